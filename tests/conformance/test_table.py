"""docs/conformance.md is what tests/conformance/table.py makes from the cases and reconcile's results
now: a case, a translation or a result that changes changes the page, and this fails until it is
regenerated (.venv/bin/python -m tests.conformance.table > docs/conformance.md)."""

from __future__ import annotations

from pathlib import Path

from tests.conformance.model import validation
from tests.conformance.table import CASES, render

PAGE = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"


def test_the_page_is_what_the_cases_make() -> None:
    assert PAGE.read_text() == render(), (
        "docs/conformance.md is not what the conformance cases say: "
        ".venv/bin/python -m tests.conformance.table > docs/conformance.md")


def test_the_page_names_every_case_and_its_source() -> None:
    text = PAGE.read_text()
    for case in CASES:
        assert case.name.replace("|", "\\|") in text, case.id


def test_every_translation_validates_without_a_warning() -> None:
    """A translation validate warns about (a rule that keeps everything, an option the registry cannot
    serve) would not say what the peer's configuration says: none may draw a warning."""
    warned = {case.id: [str(w) for w in validation(case).warnings] for case in CASES}
    assert {k: v for k, v in warned.items() if v} == {}

"""docs/conformance.md is what tests/conformance/table.py makes from the cases and reconcile's results
now: a case, a translation or a result that changes changes the page, and this fails until it is
regenerated (.venv/bin/python -m tests.conformance.table > docs/conformance.md)."""

from __future__ import annotations

from pathlib import Path

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

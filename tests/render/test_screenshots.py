"""The screenshots in docs/screenshots/ are what the commands print today: made again from the
real commands (tests/render/screenshots.py) and compared with the committed files, byte for byte.
``UPDATE_SCREENSHOTS=1`` writes them instead (or ``.venv/bin/python -m tests.render.screenshots``)."""

from __future__ import annotations

import os
import re

import pytest

from tests.render import screenshots


@pytest.fixture(scope="module")
def made() -> dict[str, str]:
    with screenshots.scratch() as work:
        return screenshots.generate(work)


def test_the_screenshots_are_what_the_commands_print(made: dict[str, str]) -> None:
    if os.environ.get("UPDATE_SCREENSHOTS"):
        screenshots.write(made)
    committed = {p.name: p.read_text(encoding="utf-8") for p in sorted(screenshots.DIRECTORY.iterdir())
                 if p.suffix in (".svg", ".txt")}
    assert sorted(committed) == sorted(made), "a screenshot is missing or left over: UPDATE_SCREENSHOTS=1 refreshes"
    stale = [name for name in made if committed[name] != made[name]]
    assert not stale, f"out of date: {', '.join(stale)} (refresh: UPDATE_SCREENSHOTS=1 pytest {__file__})"


def test_every_main_view_at_80_and_160_columns(made: dict[str, str]) -> None:
    for view in ("audit-list", "audit-runs", "plan", "validate"):
        for width in (80, 160):
            assert f"{view}-{width}.svg" in made and f"{view}-{width}.txt" in made


def test_the_screenshots_fit_their_width_and_cut_no_id(made: dict[str, str]) -> None:
    for name, text in made.items():
        if not name.endswith(".txt"):
            continue
        width = int(re.search(r"-(\d+)\.txt$", name)[1])  # type: ignore[index]
        lines = text.splitlines()
        assert all(len(line.rstrip()) <= width for line in lines), name
        assert "…" not in text, name
        if name.startswith("audit-"):
            assert re.findall(r"run-\d{8}T\d{6}-[0-9a-f]{8}", text), name  # whole run ids


def test_the_docs_show_the_screenshots() -> None:
    readme = (screenshots.ROOT / "README.md").read_text()
    for view in ("audit-list", "audit-runs", "plan", "validate"):
        assert f"docs/screenshots/{view}-80.svg" in readme and f"docs/screenshots/{view}-160.svg" in readme

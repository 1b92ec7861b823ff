"""Tables that fit (issue 18): every table readable at 80 columns with no id cut or ellipsised,
columns dropped in a stated order, --wide (RECONCILE_WIDE) for every column; TSV when piped, RFC
3339 times, NO_COLOR, no ANSI code in a pipe. Real output: the commands at fixed widths (COLUMNS
with click's runner), and the renderings on rich consoles of 80 and 160 columns."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rich.console import Console
from rich.text import Text

from reconcile.cli import cli
from reconcile.render.fit import Column, FittedTable
from tests.render import screenshots

ANSI = re.compile(r"\x1b\[[0-9;]*m")
COLOR = re.compile(r"\x1b\[[0-9;]*(?<![0-9])(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;[0-9;]*)?m")
RUN_ID = re.compile(r"run-\d{8}T\d{6}-[0-9a-f]{8}")
RFC3339 = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\b")


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "COLUMNS", "LINES", "PAGER", "MANPAGER",
                 "RECONCILE_WIDE", "RECONCILE_AUDIT_DB", "RECONCILE_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    screenshots.audit_trail(path)
    return path


def terminal(width: int, **extra: str) -> dict[str, str]:
    return {"FORCE_COLOR": "1", "COLUMNS": str(width), "LINES": "500", **extra}


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result


def plain(result: Result) -> str:
    return ANSI.sub("", result.stdout)


def header(text: str) -> str:
    """The first table's header: the line over its rule."""
    lines = text.splitlines()
    return next(lines[i - 1] for i, line in enumerate(lines) if line.startswith("───"))


def tsv_run_ids(trail: Path) -> set[str]:
    return {line.split("\t")[0] for line in invoke("audit", "runs", "--audit-db", str(trail)).stdout.splitlines()[1:]}


# --- the commands at 80 and 160 columns ---------------------------------------------------------------


@pytest.mark.parametrize("width", [80, 160])
@pytest.mark.parametrize("command", ["list", "runs"])
def test_audit_tables_fit_and_cut_no_run_id(trail: Path, command: str, width: int) -> None:
    text = plain(invoke("audit", command, "--audit-db", str(trail), env=terminal(width)))
    assert all(len(line.rstrip()) <= width for line in text.splitlines()), text
    assert "…" not in text
    assert set(RUN_ID.findall(text)) == tsv_run_ids(trail)  # each whole, none cut


def test_audit_list_drops_in_its_order(trail: Path) -> None:
    at_160 = plain(invoke("audit", "list", "--audit-db", str(trail), env=terminal(160)))
    columns = header(at_160).split()
    assert {"seq", "when", "run", "kind", "status", "target", "policy", "digest"} <= set(columns)
    assert "(UTC)" not in columns  # the RFC 3339 time goes first
    at_80 = plain(invoke("audit", "list", "--audit-db", str(trail), env=terminal(80)))
    assert header(at_80).split() == ["seq", "when", "kind", "status", "target", "/", "reason"]
    for run_id in tsv_run_ids(trail):  # the run over its actions, not a column
        assert re.search(rf"^run {run_id}\s*$", at_80, re.M), at_80
    assert "sha256:222222222222" not in at_80 and "DeployPolicy/prod-web" not in at_80


def test_audit_runs_drops_in_its_order(trail: Path) -> None:
    assert header(plain(invoke("audit", "runs", "--audit-db", str(trail), env=terminal(160)))).split() == [
        "run", "started", "time", "(UTC)", "took", "mode", "by", "commit", "outcome", "actions"]
    assert header(plain(invoke("audit", "runs", "--audit-db", str(trail), env=terminal(80)))).split() == [
        "run", "started", "mode", "outcome", "actions"]


@pytest.mark.parametrize("how", ["option", "variable"])
def test_wide_shows_every_column_at_80(trail: Path, how: str) -> None:
    args, env = (["--wide"], terminal(80)) if how == "option" else ([], terminal(80, RECONCILE_WIDE="1"))
    listed = plain(invoke("audit", "list", "--audit-db", str(trail), *args, env=env))
    assert header(listed).split() == ["seq", "when", "time", "(UTC)", "run", "kind", "status", "target", "policy",
                                      "digest", "reason", "/", "error"]
    assert RFC3339.search(listed)
    runs = plain(invoke("audit", "runs", "--audit-db", str(trail), *args, env=env))
    assert "took" in header(runs) and "commit" in header(runs)
    assert set(RUN_ID.findall(listed)) == set(RUN_ID.findall(runs)) == tsv_run_ids(trail)


def test_show_an_event_at_80_keeps_digests_and_hashes_whole(trail: Path) -> None:
    lines = invoke("audit", "list", "--audit-db", str(trail), "--action", "deploy").stdout.splitlines()
    event = lines[-1].split("\t")[2]  # the outcome
    for width in (80, 160):
        text = plain(invoke("audit", "show", event, "--audit-db", str(trail), env=terminal(width)))
        assert all(len(line.rstrip()) <= width for line in text.splitlines()), text
        for digest in (screenshots.D["web124"], screenshots.D["web126"]):
            assert re.search(rf"(^|\s){digest}(\s|$)", text, re.M), (width, text)
        hashes = re.findall(r"\b[0-9a-f]{64}\b", text)
        assert len(hashes) >= 4, text  # prev_hash and hash, of the intent and the outcome, each whole
    narrow = plain(invoke("audit", "show", event, "--audit-db", str(trail), env=terminal(80)))
    assert "BEFORE: intent" not in narrow and "→ succeeded" in narrow
    side_by_side = plain(invoke("audit", "show", event, "--audit-db", str(trail), "--wide", env=terminal(80)))
    assert "BEFORE: intent" in side_by_side and "AFTER: outcome" in side_by_side


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tables") / "sandbox"
    return screenshots.sandbox(root)


def plan(sandbox: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return invoke("plan", "--repo", str(sandbox), "--audit-db", str(sandbox.parent / "plan.db"), *args, env=env)


def test_plan_at_80_and_160_and_wide(sandbox: Path) -> None:
    narrow = plain(plan(sandbox, env=terminal(80)))
    assert all(len(line.rstrip()) <= 80 for line in narrow.splitlines() if "/sandbox/" not in line), narrow
    assert "…" not in narrow
    assert re.search(r"ci/team-a/web@sha256:[0-9a-f]{12}\s", narrow)  # short, by design, never cut
    assert not re.search(r"@sha256:[0-9a-f]{64}", narrow)
    assert "target / reason" in narrow
    wide = plain(plan(sandbox, env=terminal(160)))
    assert re.search(r"@sha256:[0-9a-f]{64}", wide)  # at 160 the digests fit whole
    assert all(len(line.rstrip()) <= 160 for line in wide.splitlines()), wide
    asked = plain(plan(sandbox, "--wide", env=terminal(80)))
    assert re.search(r"@sha256:[0-9a-f]{64}", asked) and "target / reason" not in asked


def test_plan_tsv_and_no_ansi_when_piped(sandbox: Path) -> None:
    piped = plan(sandbox, "--format", "tsv")
    lines = piped.stdout.splitlines()
    assert lines[0].split("\t") == ["policy", "kind", "target", "digest_before", "digest_after", "tags", "mutates",
                                    "block", "cause", "reason"]
    assert all(line.count("\t") == 9 for line in lines)
    assert any(re.search(r"\tprune\tci/team-a/web@sha256:[0-9a-f]{64}\t", line) for line in lines)
    assert "changes at" in piped.stderr and "changes at" not in piped.stdout
    assert "\x1b" not in piped.stdout + piped.stderr
    assert "\x1b" not in plan(sandbox).stdout  # the default rendering, piped: no colour codes
    assert plan(sandbox, env={"RECONCILE_FORMAT": "tsv"}).stdout == piped.stdout


def test_no_color_keeps_bold_and_drops_colour(sandbox: Path, trail: Path) -> None:
    for result in (plan(sandbox, env=terminal(120, NO_COLOR="1")),
                   invoke("audit", "list", "--audit-db", str(trail), env=terminal(120, NO_COLOR="1"))):
        assert "\x1b[" in result.stdout and not COLOR.search(result.stdout)
    assert COLOR.search(plan(sandbox, env=terminal(120)).stdout)


@pytest.mark.parametrize("args", [["audit", "list"], ["audit", "runs"], ["config"]])
def test_piped_tables_are_tsv_with_rfc3339_times_and_no_ansi(trail: Path, args: list[str]) -> None:
    result = invoke(*args, "--audit-db", str(trail), env={"COLUMNS": "40"})
    lines = result.stdout.splitlines()
    assert "\x1b" not in result.stdout
    assert len({line.count("\t") for line in lines}) == 1 and lines[0].count("\t") >= 3
    if args[0] == "audit":
        stamps = re.findall(r"\t(\d{4}-\d\d-\d\dT[0-9:.]+\S*)", result.stdout)
        assert stamps and all(s.endswith("Z") for s in stamps)


# --- the renderings on rich consoles ---------------------------------------------------------------------


def drawn(renderable: object, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), force_terminal=True, color_system="truecolor")
    console.print(renderable, crop=False)
    return console.export_text()


def test_columns_drop_in_rank_order_and_unwrapping_ones_are_never_cut() -> None:
    table = FittedTable([Column("id"), Column("low", drop=1), Column("mid", drop=2), Column("text", wrap=True)])
    long_id = "run-20261121T120000-1a2b3c40"
    table.add_row(Text(long_id), Text("x" * 20), Text("y" * 20), Text("a few words that wrap"))
    assert [table.columns[i].header for i in table.shown(160)] == ["id", "low", "mid", "text"]
    assert [table.columns[i].header for i in table.shown(70)] == ["id", "mid", "text"]
    assert [table.columns[i].header for i in table.shown(45)] == ["id", "text"]
    for width in (30, 45, 80):  # narrower than the id and what never goes: drawn wider, never cut
        text = drawn(table, width)
        assert long_id in text and "…" not in text
    table.wide = True
    assert [table.columns[i].header for i in table.shown(45)] == ["id", "low", "mid", "text"]
    assert long_id in drawn(table, 45) and "x" * 20 in drawn(table, 45)


def test_the_renderings_at_80_and_160_columns(trail: Path) -> None:
    from reconcile.audit import AuditStore
    from reconcile.audit.query import ActionFilter, list_actions
    from reconcile.render import audit as render

    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    with AuditStore.open(trail, read_only=True) as store:
        rows, runs = list_actions(store, ActionFilter()), store.runs()
        run = runs[0]
        actions = list_actions(store, ActionFilter(run=run.id))
    for width in (80, 160):
        for renderable in (render.actions_table(rows, now), render.runs_table(runs, now),
                           render.run_detail(run, actions, now)):
            text = drawn(renderable, width)
            assert all(len(line.rstrip()) <= width for line in text.splitlines()), text
            assert "…" not in text
            assert run.id in text
        detail = drawn(render.run_detail(run, actions, now), width)
        assert run.chain_head and run.chain_head in detail
        assert all(a["event_id"] in detail for a in actions)

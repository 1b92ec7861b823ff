"""The review side of the audit trail: filters and their SQL, time arguments, rich and TSV
renderings, and the ``reconcile audit`` commands, on real databases written through the store."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import rich.pager
from click.testing import CliRunner, Result
from rich.console import Console

import reconcile.cli.audit  # noqa: F401  (registers the command group)
from reconcile.audit import AuditStore
from reconcile.audit.query import ActionFilter, build_query, list_actions, parse_when
from reconcile.cli import cli
from reconcile.render import audit as render

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
HOST = "cronjob-pod-1"
COMMIT_A = "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d"
COMMIT_B = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"
T_WEB1, T_WEB2 = "ci/team-a/web:build-1", "ci/team-a/web:build-2"
T_PROD, T_DEPLOY, T_API = "prod/web:prod", "prod-eu/web/Deployment/web", "ci/team-b/api:old"
D_A, D_B, D_C, D_D, D_E = (f"sha256:{c * 64}" for c in "abcde")
STAMPS = [
    "2026-11-10T08:00:00.000000Z",  # 1  run A starts
    "2026-11-10T08:00:01.000000Z",  # 2  prune intent
    "2026-11-10T08:00:02.000000Z",  # 3  prune succeeded
    "2026-11-10T08:00:03.000000Z",  # 4  skip skipped
    "2026-11-10T08:00:04.000000Z",  # 5  run A ends
    "2026-11-21T09:00:00.000000Z",  # 6  run B starts
    "2026-11-21T09:00:01.000000Z",  # 7  promote intent
    "2026-11-21T09:00:02.000000Z",  # 8  promote succeeded
    "2026-11-21T11:30:00.000000Z",  # 9  deploy intent
    "2026-11-21T11:31:00.000000Z",  # 10 deploy failed
    "2026-11-21T11:59:00.000000Z",  # 11 prune intent, never completed: run B was killed
]
ALL = [2, 3, 4, 7, 8, 9, 10, 11]
COLOR_CODE = re.compile(r"\x1b\[[0-9;]*(?<![0-9])(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;[0-9;]*)?m")


def clock(*stamps: str) -> Callable[[], str]:
    """The store's clock, returning fixed RFC 3339 timestamps one call at a time."""
    remaining = iter(stamps)
    return lambda: next(remaining)


@dataclass
class Trail:
    path: Path
    run_a: str
    run_b: str
    events: dict[int, dict[str, Any]]  # seq -> the actions row
    head: str


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No outer settings leak in: audit db, colors, terminal size, pager."""
    for name in ("RECONCILE_AUDIT_DB", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "COLUMNS", "LINES",
                 "PAGER", "MANPAGER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LESS", "FRX")
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)


@pytest.fixture
def trail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Trail:
    """Run A (finished) prunes and skips; run B (killed) promotes, fails a deploy, leaves an intent."""
    path = tmp_path / "a.db"
    with monkeypatch.context() as patch:
        patch.setattr("reconcile.audit.store.socket.gethostname", lambda: HOST)  # the CronJob's pod
        store = AuditStore.open(path, clock=clock(*STAMPS))
        a = store.start_run("apply", repo_url="https://git.example.com/policies.git", repo_commit=COMMIT_A,
                            actor="alice")
        with a.mutation("prune", T_WEB1, policy="RetentionPolicy/ci-cleanup", reason="not kept by any rule",
                        digest_before=D_A):
            pass
        a.append("skip", T_WEB2, status="skipped", policy="RetentionPolicy/ci-cleanup",
                 reason="protected: running in prod-eu", digest_before=D_B)
        a.finish("succeeded")
        b = store.start_run("run", repo_commit=COMMIT_B, actor="cron")
        with b.mutation("promote", T_PROD, policy="PromotionPolicy/web", reason="soaked 24h in staging",
                        digest_before=D_B, digest_after=D_C):
            pass
        with pytest.raises(RuntimeError), b.mutation("deploy", T_DEPLOY, policy="DeployPolicy/prod-web",
                                                     digest_before=D_C, digest_after=D_D):
            raise RuntimeError("rollout timed out")
        b.append("prune", T_API, status="intent", policy="RetentionPolicy/b-cleanup", digest_before=D_E)
    events = {row["seq"]: dict(row) for row in store.conn.execute("SELECT * FROM actions")}
    head = store.head()
    store.close()
    return Trail(path, a.id, b.id, events, head)


def audit(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["audit", *args], env=env)


def on_terminal(**extra: str) -> dict[str, str]:
    """Environment that makes rich treat CliRunner's output as a 200x500 terminal."""
    return {"FORCE_COLOR": "1", "COLUMNS": "200", "LINES": "500", **extra}


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def seqs(rows: list[dict[str, Any]]) -> list[int]:
    return [row["seq"] for row in rows]


def tsv_seqs(stdout: str) -> list[int]:
    lines = stdout.splitlines()
    assert lines[0].startswith("seq\ttimestamp\t")
    return [int(line.split("\t")[0]) for line in lines[1:]]


def open_ro(trail: Trail) -> AuditStore:
    return AuditStore.open(trail.path, read_only=True)


# --- the filter ---------------------------------------------------------------------------------


def at(text: str) -> datetime:
    return parse_when(text, NOW)


FILTERS = [
    # (id, filter, expected seqs)
    ("everything", ActionFilter(), ALL),
    ("action", ActionFilter(actions=("prune",)), [2, 3, 11]),
    ("actions", ActionFilter(actions=("prune", "deploy")), [2, 3, 9, 10, 11]),
    ("status", ActionFilter(statuses=("intent",)), [2, 7, 9, 11]),
    ("statuses", ActionFilter(statuses=("failed", "skipped")), [4, 10]),
    ("target-glob", ActionFilter(target="ci/team-a/*"), [2, 3, 4]),
    ("target-question-mark", ActionFilter(target="*:build-?"), [2, 3, 4]),
    ("target-exact", ActionFilter(target=T_PROD), [7, 8]),
    ("target-case-sensitive", ActionFilter(target="CI/*"), []),
    ("policy-exact", ActionFilter(policy="RetentionPolicy/ci-cleanup"), [2, 3, 4]),
    ("policy-glob", ActionFilter(policy="RetentionPolicy/*"), [2, 3, 4, 11]),
    ("policy-is-not-a-prefix", ActionFilter(policy="RetentionPolicy"), []),
    ("run", ActionFilter(run="A"), [2, 3, 4]),
    ("unknown-run", ActionFilter(run="run-nope"), []),
    ("commit-prefix", ActionFilter(commit="1a2b"), [2, 3, 4]),
    ("commit-upper-case", ActionFilter(commit="9F8E7D"), [7, 8, 9, 10, 11]),
    ("commit-full", ActionFilter(commit=COMMIT_B), [7, 8, 9, 10, 11]),
    ("commit-unknown", ActionFilter(commit="1a2c"), []),
    ("since-2h", ActionFilter(since=at("2h")), [9, 10, 11]),
    ("since-7d", ActionFilter(since=at("7d")), [7, 8, 9, 10, 11]),
    ("since-30m-inclusive", ActionFilter(since=at("30m")), [9, 10, 11]),
    ("since-29m", ActionFilter(since=at("29m")), [10, 11]),
    ("since-date", ActionFilter(since=at("2026-11-21")), [7, 8, 9, 10, 11]),
    ("since-is-inclusive", ActionFilter(since=at("2026-11-21T09:00:01Z")), [7, 8, 9, 10, 11]),
    ("since-offset", ActionFilter(since=at("2026-11-21T12:30:30+01:00")), [10, 11]),
    ("until-date", ActionFilter(until=at("2026-11-21")), [2, 3, 4]),
    ("until-is-exclusive", ActionFilter(until=at("2026-11-21T09:00:02Z")), [2, 3, 4, 7]),
    ("since-and-until", ActionFilter(since=at("7d"), until=at("2h")), [7, 8]),
    ("limit-keeps-the-newest", ActionFilter(limit=2), [10, 11]),
    ("limit-after-filtering", ActionFilter(actions=("prune",), limit=2), [3, 11]),
    ("limit-larger-than-all", ActionFilter(limit=100), ALL),
    ("combined", ActionFilter(actions=("prune",), statuses=("intent",), since=at("7d")), [11]),
]


@pytest.mark.parametrize(("flt", "expected"), [case[1:] for case in FILTERS], ids=[case[0] for case in FILTERS])
def test_list_filters(trail: Trail, flt: ActionFilter, expected: list[int]) -> None:
    if flt.run == "A":
        flt = ActionFilter(run=trail.run_a)
    with open_ro(trail) as store:
        rows = list_actions(store, flt)
    assert seqs(rows) == expected
    assert all(row == trail.events[row["seq"]] for row in rows)


def test_results_are_in_chain_order_even_when_clocks_disagree(tmp_path: Path) -> None:
    stamps = ["2026-11-21T10:00:00.000000Z", "2026-11-21T09:00:00.000000Z", "2026-11-21T11:00:00.000000Z",
              "2026-11-20T08:00:00.000000Z", "2026-11-21T10:30:00.000000Z"]
    with AuditStore.open(tmp_path / "a.db", clock=clock(*stamps)) as store:
        run = store.start_run("apply")
        for target in ("one", "two", "three", "four"):
            run.append("prune", target, status="succeeded")
    with AuditStore.open(tmp_path / "a.db", read_only=True) as store:
        assert seqs(list_actions(store, ActionFilter())) == [2, 3, 4, 5]
        assert seqs(list_actions(store, ActionFilter(limit=2))) == [4, 5]
        assert seqs(list_actions(store, ActionFilter(since=at("2026-11-21")))) == [2, 3, 5]
        assert seqs(list_actions(store, ActionFilter(since=at("2026-11-21"), limit=2))) == [3, 5]
    result = audit("list", "--audit-db", str(tmp_path / "a.db"))
    assert tsv_seqs(result.stdout) == [2, 3, 4, 5]


def test_filters_are_parameters_never_sql(trail: Trail) -> None:
    hostile = "x' OR '1'='1"
    sql, params = build_query(ActionFilter(target=hostile, policy=hostile, run=hostile, commit=hostile,
                                           actions=(hostile,), statuses=(hostile,)))
    assert hostile not in sql and "'" not in sql
    assert params.count(hostile) == 6  # the target twice: actions' targets, action_refs' names
    with open_ro(trail) as store:
        assert list_actions(store, ActionFilter(target=hostile)) == []


PLANS = [
    # (id, filter, the index SQLite must use)
    ("since-1h-action-prune", ActionFilter(since=at("1h"), actions=("prune",)), "idx_actions_kind_timestamp"),
    ("since-1h-action-prune-limited", ActionFilter(since=at("1h"), actions=("prune",), limit=101),
     "idx_actions_kind_timestamp"),
    ("since", ActionFilter(since=at("1h"), limit=101), "idx_actions_timestamp"),
    ("until", ActionFilter(until=at("2026-11-01")), "idx_actions_timestamp"),
    ("target-prefix", ActionFilter(target="ci/team-a/*", limit=101), "idx_actions_target"),
    ("run", ActionFilter(run="run-x", limit=101), "idx_actions_run_id"),
    ("commit", ActionFilter(commit="1a2b", limit=101), "idx_actions_run_id"),
]


@pytest.mark.parametrize(("flt", "index"), [case[1:] for case in PLANS], ids=[case[0] for case in PLANS])
def test_filters_use_the_indexes(trail: Trail, flt: ActionFilter, index: str) -> None:
    sql, params = build_query(flt)
    with open_ro(trail) as store:
        plan = [row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
    assert any(f"USING INDEX {index}" in step for step in plan), plan


# --- time arguments -----------------------------------------------------------------------------


WHEN_VALID = [
    ("2h", NOW - timedelta(hours=2)),
    ("7d", NOW - timedelta(days=7)),
    ("30m", NOW - timedelta(minutes=30)),
    ("90s", NOW - timedelta(seconds=90)),
    ("1w", NOW - timedelta(weeks=1)),
    ("1h30m", NOW - timedelta(minutes=90)),
    (" 2h ", NOW - timedelta(hours=2)),
    ("0s", NOW),
    ("2026-11-21", datetime(2026, 11, 21, tzinfo=UTC)),
    ("2026-11-21T08:00:00Z", datetime(2026, 11, 21, 8, tzinfo=UTC)),
    ("2026-11-21t08:00:00z", datetime(2026, 11, 21, 8, tzinfo=UTC)),
    ("2026-11-21T10:00:00+02:00", datetime(2026, 11, 21, 8, tzinfo=UTC)),
    ("2026-11-21T03:00:00-05:00", datetime(2026, 11, 21, 8, tzinfo=UTC)),
    ("2026-11-21T08:00:00.25Z", datetime(2026, 11, 21, 8, 0, 0, 250_000, tzinfo=UTC)),
    ("2026-11-21T08:00:00.123456789Z", datetime(2026, 11, 21, 8, 0, 0, 123_456, tzinfo=UTC)),
]


@pytest.mark.parametrize(("text", "expected"), WHEN_VALID, ids=[case[0] for case in WHEN_VALID])
def test_parse_when_valid(text: str, expected: datetime) -> None:
    when = parse_when(text, NOW)
    assert when == expected
    assert when.tzinfo is not None and when.utcoffset() == timedelta(0)


WHEN_INVALID = [
    ("", "'' is not a time: use a duration back from now"),
    ("yesterday", "'yesterday' is not a time: use a duration back from now (30m, 2h, 7d, 1w)"),
    ("2x", "'2x' is not a time: unknown unit 'x'"),
    ("1.5h", "'1.5h' is not a time: fractions are not allowed"),
    ("-2h", "'-2h' is not a time: use"),
    ("h", "'h' is not a time: use"),
    ("2026-11-21T08:00:00", "'2026-11-21T08:00:00' has no time zone: add Z (UTC) or an offset such as +02:00"),
    ("2026-13-01", "'2026-13-01' is not a date"),
    ("2026-11-21T25:00:00Z", "'2026-11-21T25:00:00Z' is not a time (hour must be in 0..23)"),
    ("2026-11-21 at noon", "'2026-11-21 at noon' is not a time: use"),
    ("99999999999999d", "longer than the maximum of 100 years"),
]


@pytest.mark.parametrize(("text", "message"), WHEN_INVALID, ids=[case[0] or "empty" for case in WHEN_INVALID])
def test_parse_when_invalid(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_when(text, NOW)
    assert message in str(caught.value)


def test_a_bad_time_is_a_usage_error(trail: Trail) -> None:
    result = audit("list", "--audit-db", str(trail.path), "--since", "yesterday")
    assert result.exit_code == 2
    assert "Invalid value for '--since': 'yesterday' is not a time" in result.stderr


# --- the terminal rendering ---------------------------------------------------------------------


def recorded(renderable: Any, width: int = 160, **options: Any) -> Console:
    console = Console(record=True, width=width, force_terminal=True, color_system="truecolor", file=io.StringIO(),
                      **options)
    console.print(renderable, crop=False)
    return console


def table_rows(text: str) -> dict[int, dict[str, str]]:
    """The cells of a rendered actions table by seq and column, wrapped cells joined back up.

    Spaces are dropped from cells: a narrow column wraps at spaces and folds long words.
    """
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("seq "))
    names = re.findall(r"\S+(?: \S+)*", lines[header])
    starts = [0, *(lines[header].index(name) for name in names[1:])]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    rows: dict[int, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in lines[header + 2:]:
        cells = [line[a:b].strip() for a, b in bounds]
        if cells[0]:
            current = rows[int(cells[0])] = dict.fromkeys(names, "")
        for name, cell in zip(names, cells, strict=True):
            current[name] += cell.replace(" ", "")
    return rows


def test_actions_table_on_a_terminal(trail: Trail) -> None:
    with open_ro(trail) as store:
        rows = list_actions(store, ActionFilter())
    console = recorded(render.actions_table(rows, NOW, title="8 actions", wide=True))
    styled = console.export_text(styles=True, clear=False)
    text = console.export_text()
    run_a, run_b = trail.run_a, trail.run_b
    retention, promotion, deploy = "RetentionPolicy/ci-cleanup", "PromotionPolicy/web", "DeployPolicy/prod-web"
    expected = {
        2: {"seq": "2", "when": "11d ago", "time (UTC)": "2026-11-10T08:00:01Z", "run": run_a, "kind": "prune",
            "status": "intent", "target": T_WEB1, "policy": retention, "digest": "sha256:aaaaaaaaaaaa → —",
            "reason / error": "not kept by any rule"},
        3: {"seq": "3", "when": "11d ago", "time (UTC)": "2026-11-10T08:00:02Z", "run": run_a, "kind": "prune",
            "status": "succeeded", "target": T_WEB1, "policy": retention, "digest": "sha256:aaaaaaaaaaaa → —",
            "reason / error": "not kept by any rule"},
        4: {"seq": "4", "when": "11d ago", "time (UTC)": "2026-11-10T08:00:03Z", "run": run_a, "kind": "skip",
            "status": "skipped", "target": T_WEB2, "policy": retention, "digest": "sha256:bbbbbbbbbbbb → —",
            "reason / error": "protected: running in prod-eu"},
        7: {"seq": "7", "when": "2h ago", "time (UTC)": "2026-11-21T09:00:01Z", "run": run_b, "kind": "promote",
            "status": "intent", "target": T_PROD, "policy": promotion,
            "digest": "sha256:bbbbbbbbbbbb → sha256:cccccccccccc", "reason / error": "soaked 24h in staging"},
        9: {"seq": "9", "when": "30m ago", "time (UTC)": "2026-11-21T11:30:00Z", "run": run_b, "kind": "deploy",
            "status": "intent", "target": T_DEPLOY, "policy": deploy,
            "digest": "sha256:cccccccccccc → sha256:dddddddddddd", "reason / error": ""},
        10: {"seq": "10", "when": "29m ago", "time (UTC)": "2026-11-21T11:31:00Z", "run": run_b, "kind": "deploy",
             "status": "failed", "target": T_DEPLOY, "policy": deploy,
             "digest": "sha256:cccccccccccc → sha256:dddddddddddd",
             "reason / error": "RuntimeError: rollout timed out"},
        11: {"seq": "11", "when": "1m ago", "time (UTC)": "2026-11-21T11:59:00Z", "run": run_b, "kind": "prune",
             "status": "intent", "target": T_API, "policy": "RetentionPolicy/b-cleanup",
             "digest": "sha256:eeeeeeeeeeee → —", "reason / error": ""},
    }
    rows = table_rows(text)
    assert list(rows) == ALL
    for seq, cells in expected.items():
        assert rows[seq] == {name: value.replace(" ", "") for name, value in cells.items()}, seq
    assert "\x1b[1;31mfailed" in styled
    assert "\x1b[32msucceeded" in styled
    assert "\x1b[33mintent" in styled
    assert "\x1b[2mskipped" in styled


@pytest.mark.parametrize("how", ["no_color", "NO_COLOR"])
def test_no_color_keeps_the_words(trail: Trail, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    with open_ro(trail) as store:
        rows = list_actions(store, ActionFilter())
        runs = store.runs()
    if how == "NO_COLOR":
        monkeypatch.setenv("NO_COLOR", "1")
    options = {"no_color": True} if how == "no_color" else {}
    cases = [(render.actions_table(rows, NOW), ("succeeded", "failed", "intent", "skipped")),
             (render.runs_table(runs, NOW), ("succeeded", "unfinished"))]
    for renderable, words in cases:
        console = recorded(renderable, **options)
        written = console.file.getvalue()  # what reached the terminal (the record keeps every style)
        assert "\x1b[" in written  # still a terminal: bold and dim stay
        assert not COLOR_CODE.search(written), written
        for word in words:
            assert word in console.export_text(clear=False)


def test_no_color_through_the_command(trail: Trail) -> None:
    colored = audit("list", "--audit-db", str(trail.path), env=on_terminal())
    plain = audit("list", "--audit-db", str(trail.path), env=on_terminal(NO_COLOR="1"))
    assert colored.exit_code == plain.exit_code == 0
    assert COLOR_CODE.search(colored.stdout)
    assert not COLOR_CODE.search(plain.stdout)
    for word in ("succeeded", "failed", "intent", "skipped", T_DEPLOY):
        assert word in plain.stdout


RELATIVE = [
    (timedelta(seconds=3), "just now"),
    (timedelta(seconds=-3), "just now"),
    (timedelta(seconds=45), "45s ago"),
    (timedelta(minutes=3, seconds=59), "3m ago"),
    (timedelta(hours=2, minutes=59), "2h ago"),
    (timedelta(hours=30), "yesterday"),
    (timedelta(days=5, hours=1), "5d ago"),
    (timedelta(days=45), "2026-10-07"),
    (timedelta(minutes=-5), "in 5m"),
]


@pytest.mark.parametrize(("ago", "expected"), RELATIVE, ids=[case[1] + str(i) for i, case in enumerate(RELATIVE)])
def test_relative_times(ago: timedelta, expected: str) -> None:
    stamp = (NOW - ago).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert render.relative_time(stamp, NOW) == expected


def test_control_characters_in_the_trail_cannot_drive_the_terminal(tmp_path: Path) -> None:
    with AuditStore.open(tmp_path / "a.db") as store:
        store.start_run("apply").append("skip", "t\x1b[2Jx", status="skipped", reason="bell\x07 [red]markup[/red]")
        rows = list_actions(store, ActionFilter())
    text = recorded(render.actions_table(rows, NOW)).export_text(styles=True)
    assert "\x1b[2J" not in text and "\x07" not in text
    assert "t\\x1b[2Jx" in text and "[red]markup[/red]" in text


# --- piped: TSV ---------------------------------------------------------------------------------


def test_piped_list_is_tsv_with_absolute_times(trail: Trail) -> None:
    result = audit("list", "--audit-db", str(trail.path), "--run", trail.run_a)
    assert result.exit_code == 0, result.output
    e = trail.events
    a = trail.run_a
    assert result.stdout.splitlines() == [
        "seq\ttimestamp\tevent_id\trun_id\tkind\tstatus\ttarget\tpolicy\tdigest_before\tdigest_after\treason\terror"
        "\tduration\tdry_run\tintent_id\trepository\ttags\tcause",
        f"2\t2026-11-10T08:00:01.000000Z\t{e[2]['event_id']}\t{a}\tprune\tintent\t{T_WEB1}\t"
        f"RetentionPolicy/ci-cleanup\t{D_A}\t\tnot kept by any rule\t\t\tfalse\t\tci/team-a/web\t\t",
        f"3\t2026-11-10T08:00:02.000000Z\t{e[3]['event_id']}\t{a}\tprune\tsucceeded\t{T_WEB1}\t"
        f"RetentionPolicy/ci-cleanup\t{D_A}\t\tnot kept by any rule\t\t{e[3]['duration']}\tfalse\t{e[2]['event_id']}"
        "\tci/team-a/web\t\t",
        f"4\t2026-11-10T08:00:03.000000Z\t{e[4]['event_id']}\t{a}\tskip\tskipped\t{T_WEB2}\t"
        f"RetentionPolicy/ci-cleanup\t{D_B}\t\tprotected: running in prod-eu\t\t\tfalse\t\t\t\t",
    ]
    assert "\x1b" not in result.stdout


def test_piped_list_truncates_nothing_and_escapes_tabs_and_newlines(tmp_path: Path) -> None:
    reason = "r" * 150 + "\tand\n" + "s" * 150 + "\\"
    with AuditStore.open(tmp_path / "a.db") as store:
        store.start_run("apply").append("skip", "t" * 200, status="skipped", reason=reason)
    result = audit("list", "--audit-db", str(tmp_path / "a.db"), env={"COLUMNS": "40"})
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    fields = lines[1].split("\t")
    assert fields[6] == "t" * 200
    assert fields[10] == "r" * 150 + "\\tand\\n" + "s" * 150 + "\\\\"


def test_piped_list_filters_through_the_options(trail: Trail) -> None:
    cases = [
        (["--action", "prune"], [2, 3, 11]),
        (["--action", "prune", "--action", "deploy"], [2, 3, 9, 10, 11]),
        (["--status", "failed", "--status", "skipped"], [4, 10]),
        (["--target", "ci/team-a/*"], [2, 3, 4]),
        (["--policy", "RetentionPolicy/*"], [2, 3, 4, 11]),
        (["--run", trail.run_b], [7, 8, 9, 10, 11]),
        (["--commit", COMMIT_A[:7]], [2, 3, 4]),
        (["--until", "2026-11-21"], [2, 3, 4]),
        (["--since", "2026-11-21T11:00:00Z", "--until", "2026-11-21T11:59:00Z"], [9, 10]),
        (["--since", "36500d"], ALL),
        (["--limit", "3"], [9, 10, 11]),
        (["--limit", "0"], ALL),
    ]
    for args, expected in cases:
        result = audit("list", "--audit-db", str(trail.path), *args)
        assert result.exit_code == 0, (args, result.output)
        assert tsv_seqs(result.stdout) == expected, args


def test_since_relative_to_now_through_the_command(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    stamps = [now - timedelta(days=10), now - timedelta(days=3), now - timedelta(hours=3), now - timedelta(minutes=5)]
    with AuditStore.open(tmp_path / "a.db", clock=clock(*(s.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for s in stamps))) as s:
        run = s.start_run("apply")
        for target in ("three-days", "three-hours", "five-minutes"):
            run.append("prune", target, status="succeeded")
    for since, expected in (("2h", [4]), ("7d", [2, 3, 4]), ("1w", [2, 3, 4]), ("30m", [4]), ("90s", [])):
        result = audit("list", "--audit-db", str(tmp_path / "a.db"), "--since", since)
        assert tsv_seqs(result.stdout) == expected, since


def test_the_limit_on_a_terminal_and_when_piped(tmp_path: Path) -> None:
    with AuditStore.open(tmp_path / "a.db") as store:
        run = store.start_run("apply")
        for n in range(105):
            run.append("prune", f"t{n}", status="succeeded")
    db = str(tmp_path / "a.db")

    def shown(result: Result) -> list[int]:
        return [int(m) for m in re.findall(r"^\s*(\d+)  ", strip_ansi(result.stdout), re.M)]

    terminal = audit("list", "--audit-db", db, env=on_terminal(NO_COLOR="1"))
    assert shown(terminal) == list(range(7, 107))
    assert "100 actions, the newest (--limit N, 0 for all)" in terminal.stdout
    assert shown(audit("list", "--audit-db", db, "--limit", "0", env=on_terminal())) == list(range(2, 107))
    assert shown(audit("list", "--audit-db", db, "--limit", "5", env=on_terminal())) == list(range(102, 107))
    assert tsv_seqs(audit("list", "--audit-db", db).stdout) == list(range(2, 107))
    assert tsv_seqs(audit("list", "--audit-db", db, "--limit", "5").stdout) == list(range(102, 107))


def test_pager_only_on_a_terminal_and_only_when_taller_than_it(trail: Trail, monkeypatch: pytest.MonkeyPatch) -> None:
    paged: list[str] = []
    monkeypatch.setattr(rich.pager.SystemPager, "_pager", lambda self, content: paged.append(content))
    db = str(trail.path)
    tall = audit("list", "--audit-db", db, env=on_terminal(LINES="5"))
    assert tall.exit_code == 0 and tall.stdout == ""
    assert len(paged) == 1 and T_DEPLOY in paged[0] and "\x1b[1;31mfailed" in paged[0]  # colors kept for less -R
    fits = audit("list", "--audit-db", db, env=on_terminal(LINES="100"))
    assert len(paged) == 1 and T_DEPLOY in fits.stdout
    piped = audit("list", "--audit-db", db, env={"LINES": "5"})
    assert len(paged) == 1 and T_DEPLOY in piped.stdout


# --- runs -------------------------------------------------------------------------------------


def test_runs_piped_and_on_a_terminal(trail: Trail) -> None:
    piped = audit("runs", "--audit-db", str(trail.path))
    assert piped.exit_code == 0
    header, first, second = piped.stdout.splitlines()
    assert header.split("\t") == list(render.RUN_COLUMNS)
    assert first.split("\t")[:4] == [trail.run_a, "2026-11-10T08:00:00.000000Z", "2026-11-10T08:00:04.000000Z",
                                     "succeeded"]
    assert first.split("\t")[11] == '{"prune.succeeded":1,"skip.skipped":1}'
    assert second.split("\t")[:8] == [trail.run_b, "2026-11-21T09:00:00.000000Z", "", "unfinished", "run", "false",
                                      "cron", HOST]

    terminal = audit("runs", "--audit-db", str(trail.path), env=on_terminal(NO_COLOR="1"))
    line_b = next(line for line in terminal.stdout.splitlines() if trail.run_b in line)
    assert "unfinished" in line_b and f"cron@{HOST}" in line_b and COMMIT_B[:12] in line_b
    assert "2 runs" in terminal.stdout
    assert [line for line in audit("runs", "--audit-db", str(trail.path), "--limit", "1").stdout.splitlines()][1:] \
        == [second]


def test_runs_table_highlights_unfinished_runs(trail: Trail) -> None:
    with open_ro(trail) as store:
        runs = store.runs()[::-1]
    console = recorded(render.runs_table(runs, NOW))
    text, styled = console.export_text(clear=False), console.export_text(styles=True)
    assert "unfinished" in row_line_of(text, trail.run_b)
    assert "\x1b[1;7;33munfinished" in styled
    assert "3h ago" in row_line_of(text, trail.run_b)
    assert "11d ago" in row_line_of(text, trail.run_a) and "4.0s" in row_line_of(text, trail.run_a)


def row_line_of(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


# --- show -------------------------------------------------------------------------------------


def test_show_a_run(trail: Trail) -> None:
    piped = audit("show", trail.run_a, "--audit-db", str(trail.path))
    assert piped.exit_code == 0, piped.output
    fields, actions = piped.stdout.split("\n\n")
    assert fields.splitlines()[:5] == ["field\tvalue", f"id\t{trail.run_a}", "started_at\t2026-11-10T08:00:00.000000Z",
                                       "finished_at\t2026-11-10T08:00:04.000000Z", "outcome\tsucceeded"]
    assert f"repo_commit\t{COMMIT_A}" in fields.splitlines()
    assert tsv_seqs(actions) == [2, 3, 4]

    terminal = audit("show", trail.run_a, "--audit-db", str(trail.path), env=on_terminal(NO_COLOR="1"))
    assert terminal.exit_code == 0
    for text in (trail.run_a, "succeeded", f"alice@{HOST}", COMMIT_A, "2026-11-10T08:00:00Z", "3 actions",
                 *(trail.events[seq]["event_id"] for seq in (2, 3, 4))):
        assert text in terminal.stdout, text


def test_show_an_outcome_with_its_intent_side_by_side(trail: Trail) -> None:
    intent, outcome = trail.events[7], trail.events[8]
    terminal = audit("show", outcome["event_id"], "--audit-db", str(trail.path), env=on_terminal(NO_COLOR="1"))
    assert terminal.exit_code == 0, terminal.output
    header = row_line_of(terminal.stdout, "BEFORE: intent")
    assert header.index(f"BEFORE: intent {intent['event_id']}") < header.index(f"AFTER: outcome {outcome['event_id']}")
    digests = row_line_of(terminal.stdout, D_C)
    assert digests.index(D_B) < digests.index("→") < digests.index(D_C)
    status = row_line_of(terminal.stdout, "status ")
    assert status.index("intent") < status.index("succeeded")

    # The intent shows the same pair; piped, a field/before/after TSV.
    piped = audit("show", intent["event_id"], "--audit-db", str(trail.path))
    lines = piped.stdout.splitlines()
    assert lines[0] == "field\tbefore\tafter"
    assert f"event_id\t{intent['event_id']}\t{outcome['event_id']}" in lines
    assert "status\tintent\tsucceeded" in lines
    assert f"digest_after\t{D_C}\t{D_C}" in lines
    assert f"hash\t{intent['hash']}\t{outcome['hash']}" in lines


def test_show_a_failed_and_an_unanswered_intent_and_a_single_event(trail: Trail) -> None:
    failed = audit("show", trail.events[10]["event_id"], "--audit-db", str(trail.path))
    assert "status\tintent\tfailed" in failed.stdout.splitlines()
    assert "error\t\tRuntimeError: rollout timed out" in failed.stdout.splitlines()

    pending = audit("show", trail.events[11]["event_id"], "--audit-db", str(trail.path), env=on_terminal())
    assert "AFTER: no outcome recorded" in pending.stdout
    assert "may or may not have happened" in pending.stdout

    single = audit("show", trail.events[4]["event_id"], "--audit-db", str(trail.path))
    assert single.stdout.splitlines()[:2] == ["field\tvalue", "seq\t4"]
    single_terminal = audit("show", trail.events[4]["event_id"], "--audit-db", str(trail.path), env=on_terminal())
    assert "digest BEFORE" in single_terminal.stdout and "digest AFTER" in single_terminal.stdout
    assert D_B in single_terminal.stdout


@pytest.mark.parametrize(("entry", "message"), [
    ("run-20261121T000000-00000000", "no run run-20261121T000000-00000000 in the audit trail {db}"),
    ("evt-20261121T000000-00000000", "no event evt-20261121T000000-00000000 in the audit trail {db}"),
    ("42", "no run 42 in the audit trail {db} (ids look like run-… or evt-…)"),
])
def test_show_an_unknown_id(trail: Trail, entry: str, message: str) -> None:
    result = audit("show", entry, "--audit-db", str(trail.path))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"Error: {message.format(db=trail.path)}\n"


# --- export -----------------------------------------------------------------------------------


def test_export_json(trail: Trail) -> None:
    result = audit("export", "--format", "json", "--audit-db", str(trail.path))
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [run["id"] for run in data["runs"]] == [trail.run_a, trail.run_b]
    assert data["runs"][0]["summary"] == {"prune.succeeded": 1, "skip.skipped": 1}
    assert data["runs"][1]["outcome"] == "unfinished" and data["runs"][1]["finished_at"] is None
    assert seqs(data["actions"]) == ALL
    assert data["actions"][0] == {**trail.events[2], "dry_run": False}


def test_export_jsonl(trail: Trail) -> None:
    result = audit("export", "--format", "jsonl", "--audit-db", str(trail.path))
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["type"] for o in objects] == ["run"] * 2 + ["action"] * 8
    assert [o["id"] for o in objects[:2]] == [trail.run_a, trail.run_b]
    assert seqs(objects[2:]) == ALL
    assert objects[-1] == {"type": "action", **trail.events[11], "dry_run": False}


def test_export_csv(trail: Trail) -> None:
    result = audit("export", "--format", "csv", "--audit-db", str(trail.path))
    reader = csv.DictReader(io.StringIO(result.stdout, newline=""))
    rows = list(reader)
    assert reader.fieldnames == [*render.ACTION_COLUMNS, "prev_hash", "hash"]
    assert [int(r["seq"]) for r in rows] == ALL
    assert rows[-2]["error"] == "RuntimeError: rollout timed out"
    assert rows[0]["dry_run"] == "false" and rows[0]["digest_after"] == ""
    assert rows[0]["hash"] == trail.events[2]["hash"]


def test_export_with_filters_keeps_the_runs_of_the_exported_actions(trail: Trail) -> None:
    result = audit("export", "--action", "deploy", "--audit-db", str(trail.path))
    data = json.loads(result.stdout)
    assert [run["id"] for run in data["runs"]] == [trail.run_b]
    assert seqs(data["actions"]) == [9, 10]
    limited = json.loads(audit("export", "--limit", "1", "--audit-db", str(trail.path)).stdout)
    assert seqs(limited["actions"]) == [11] and [r["id"] for r in limited["runs"]] == [trail.run_b]


# --- verify -----------------------------------------------------------------------------------


def test_verify_ok_and_warns_about_what_never_finished(trail: Trail) -> None:
    result = audit("verify", "--audit-db", str(trail.path))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"ok: 11 entries, head {trail.head}\n"
    assert result.stderr == (
        f"warning: run {trail.run_b} (started 2026-11-21T09:00:00.000000Z, cron@{HOST}) never finished; "
        f"1 intent without outcome: {trail.events[11]['event_id']} (prune {T_API})\n")
    assert audit("verify", "--expect-head", trail.head, "--audit-db", str(trail.path)).exit_code == 0


def test_verify_a_running_run_and_an_empty_trail(tmp_path: Path) -> None:
    with AuditStore.open(tmp_path / "a.db") as store:
        run = store.start_run("apply", actor="bob")
        result = audit("verify", "--audit-db", str(tmp_path / "a.db"))
    assert result.exit_code == 0
    assert f"warning: run {run.id} (started " in result.stderr
    assert f"is still running (pid {os.getpid()})" in result.stderr
    AuditStore.open(tmp_path / "empty.db").close()
    empty = audit("verify", "--audit-db", str(tmp_path / "empty.db"))
    assert (empty.exit_code, empty.stdout, empty.stderr) == (0, f"ok: 0 entries, head {'0' * 64}\n", "")


def tamper(path: Path, *statements: str) -> None:
    """Edit the trail around its append-only triggers, and put them back (a careful forger)."""
    conn = sqlite3.connect(path)
    triggers = conn.execute("SELECT sql FROM sqlite_master WHERE name IN ('actions_no_update', 'actions_no_delete')"
                            ).fetchall()
    conn.executescript("DROP TRIGGER actions_no_update; DROP TRIGGER actions_no_delete;" + ";".join(statements)
                       + ";" + ";".join(sql for (sql,) in triggers))
    conn.close()


def test_verify_names_the_first_broken_entry(trail: Trail) -> None:
    tamper(trail.path, "UPDATE actions SET reason = 'kept by a rule' WHERE seq = 3",
           "UPDATE actions SET target = 'x' WHERE seq = 8")
    result = audit("verify", "--audit-db", str(trail.path))
    assert result.exit_code == 1
    assert result.stdout == "broken: actions seq 3: its content does not match its hash (edited after it was written)\n"


def test_verify_expect_head_catches_a_truncated_tail(trail: Trail) -> None:
    tamper(trail.path, "DELETE FROM actions WHERE seq = 11")
    assert audit("verify", "--audit-db", str(trail.path)).stdout.startswith("ok: 10 entries, head ")
    result = audit("verify", "--expect-head", trail.head, "--audit-db", str(trail.path))
    assert result.exit_code == 1
    assert result.stdout.startswith(f"broken: actions seq 10: the expected head {trail.head} is not in the trail")


def test_verify_expect_head_refuses_a_prefix_and_asks_for_the_whole_hash(trail: Trail) -> None:
    # A prefix is refused, not looked up: a forged tail can be ground to match 12 hex characters.
    for given in (trail.head[:12], trail.head[:63]):
        result = audit("verify", "--expect-head", given, "--audit-db", str(trail.path))
        assert result.exit_code == 2 and result.stdout == ""
        assert f"{given} is not a full hash: give all 64 hex characters of the chain head" in result.stderr
        assert "broken" not in result.output
    other = audit("verify", "--expect-head", "not-a-hash", "--audit-db", str(trail.path))
    assert other.exit_code == 2 and "'not-a-hash' is not a chain head: 64 hex characters" in other.stderr
    upper = audit("verify", "--expect-head", trail.head.upper(), "--audit-db", str(trail.path))
    assert (upper.exit_code, upper.stdout) == (0, f"ok: 11 entries, head {trail.head}\n")


# --- read-only, where the trail is, help ------------------------------------------------------


REVIEW_COMMANDS = [["list"], ["list", "--since", "7d", "--action", "prune"], ["runs"], ["show", "{run}"],
                   ["show", "{evt}"], ["export"], ["export", "--format", "csv"], ["verify"]]


def test_review_commands_do_not_modify_the_database(trail: Trail) -> None:
    before = (trail.path.read_bytes(), trail.path.stat().st_mtime_ns)
    for args in REVIEW_COMMANDS:
        args = [a.format(run=trail.run_a, evt=trail.events[3]["event_id"]) for a in args]
        for env in ({}, on_terminal()):
            result = audit(*args, "--audit-db", str(trail.path), env=env)
            assert result.exit_code == 0, (args, result.output)
    assert (trail.path.read_bytes(), trail.path.stat().st_mtime_ns) == before


@pytest.mark.parametrize("args", REVIEW_COMMANDS, ids=lambda args: "-".join(args))
def test_a_missing_database_is_an_error_and_is_not_created(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "missing.db"
    result = audit(*[a.format(run="run-x", evt="evt-x") for a in args], "--audit-db", str(missing))
    assert result.exit_code == 3  # the audit trail is unavailable
    assert result.stderr == f"Error: no audit trail at {missing}\n"
    assert not missing.exists()
    assert list(tmp_path.glob("missing.db*")) == []


def test_the_database_from_the_environment_or_the_group_option(trail: Trail, state_home: Path) -> None:
    from_env = audit("list", env={"RECONCILE_AUDIT_DB": str(trail.path)})
    assert tsv_seqs(from_env.stdout) == ALL
    group = CliRunner().invoke(cli, ["--audit-db", str(trail.path), "audit", "list", "--action", "skip"])
    assert tsv_seqs(group.stdout) == [4]
    default = audit("list")
    # The default is in the XDG state directory (tests/conftest.py gives each test its own).
    assert default.exit_code == 3 and default.stderr == f"Error: no audit trail at {state_home}/reconcile/audit.db\n"


def test_help_lists_audit_and_its_subcommands() -> None:
    top = CliRunner().invoke(cli, ["--help"])
    assert re.search(r"^\s+audit\s+Review the audit trail", top.stdout, re.M)
    group = CliRunner().invoke(cli, ["audit", "--help"])
    for name in ("list", "runs", "show", "export", "verify"):
        assert re.search(rf"^\s+{name}\s", group.stdout, re.M), name
    listing = CliRunner().invoke(cli, ["audit", "list", "--help"])
    for option in ("--since", "--until", "--action", "--status", "--target", "--policy", "--run", "--commit",
                   "--limit", "--audit-db", "[promote|prune|untag|deploy|rollback|skip|error|notify]"):
        assert option in listing.stdout, option


def test_reconcile_main_registers_audit() -> None:
    completed = subprocess.run([sys.executable, "-m", "reconcile", "--help"], capture_output=True, text=True,
                               timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    assert re.search(r"^\s+audit\s", completed.stdout, re.M)


# --- tags: found by --target, shown and exported ----------------------------------------------

D_1, D_10, D_V = (f"sha256:{c * 64}" for c in "123")


@pytest.fixture
def tagged(tmp_path: Path) -> tuple[Path, str]:
    """One run: prunes of build-1 and of build-10 (with build-10-rc, one digest), an untag of
    build-2, a promotion setting prod and 126; a skip with no tags. Seqs 2-9 and 10."""
    path = tmp_path / "t.db"
    with AuditStore.open(path, clock=clock(*STAMPS)) as store:
        run = store.start_run("apply", actor="alice")
        for kind, target, before, after, tags in (
                ("prune", f"ci/team-a/web@{D_1}", D_1, None, ("build-1",)),
                ("prune", f"ci/team-a/web@{D_10}", D_10, None, ("build-10", "build-10-rc")),
                ("untag", "ci/team-a/web:build-2", D_V, None, ("build-2",)),
                ("promote", f"prod/team-a/web@{D_V}", None, D_V, ("prod", "126"))):
            with run.mutation(kind, target, policy="RetentionPolicy/ci-cleanup", digest_before=before,  # type: ignore[arg-type]
                              digest_after=after, tags=tags):
                pass
        run.append("skip", "ci", status="skipped", reason="registry ci could not be read")
    return path, run.id


TAG_TARGETS = [
    # (pattern, seqs)
    ("*build-10*", [4, 5]),
    ("ci/team-a/web:build-10", [4, 5]),
    ("*:build-1", [2, 3]),  # not build-10
    ("ci/team-a/web:build-1*", [2, 3, 4, 5]),
    ("ci/team-a/web:build-2", [6, 7]),  # the untag's own target
    ("ci/team-a/*", [2, 3, 4, 5, 6, 7]),
    ("prod/team-a/web:126", [8, 9]),
    ("*:prod", [8, 9]),
    ("*sha256:2222*", [4, 5]),  # a digest
    (D_V, [6, 7, 8, 9]),  # the untag's digest stays; the promotion set it
    ("sha256:*", [2, 3, 4, 5, 6, 7, 8, 9]),
    ("ci", [10]),
    ("team-a/web:build-10", []),  # a GLOB matches the whole name: registry first
    ("*BUILD-10*", []),
]


@pytest.mark.parametrize(("pattern", "expected"), TAG_TARGETS, ids=[case[0][:30] for case in TAG_TARGETS])
def test_target_matches_the_tags_an_action_removed_or_set_and_its_digests(tagged: tuple[Path, str], pattern: str,
                                                                          expected: list[int]) -> None:
    with AuditStore.open(tagged[0], read_only=True) as store:
        assert seqs(list_actions(store, ActionFilter(target=pattern))) == expected
    listed = audit("list", "--audit-db", str(tagged[0]), "--target", pattern)
    assert tsv_seqs(listed.stdout) == expected


def test_a_target_prefix_searches_both_indexes(tagged: tuple[Path, str]) -> None:
    sql, params = build_query(ActionFilter(target="ci/team-a/*", limit=101))
    with AuditStore.open(tagged[0], read_only=True) as store:
        plan = [row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
    assert any("USING INDEX idx_actions_target (target>? AND target<?)" in step for step in plan), plan
    assert any(step.startswith("SEARCH r USING PRIMARY KEY (ref>? AND ref<?)") for step in plan), plan


def test_tags_are_shown_and_exported(tagged: tuple[Path, str]) -> None:
    path, run_id = tagged
    piped = audit("list", "--audit-db", str(path), "--target", "*build-10*")
    header, *lines = (line.split("\t") for line in piped.stdout.splitlines())
    assert header[-3:] == ["repository", "tags", "cause"]  # new columns go last
    assert [line[-3:-1] for line in lines] == [["ci/team-a/web", "build-10,build-10-rc"]] * 2

    shown = audit("show", run_id, "--audit-db", str(path)).stdout.split("\n\n")[1]
    assert [line.split("\t")[-2] for line in shown.splitlines()] == [
        "tags", "build-1", "build-1", "build-10,build-10-rc", "build-10,build-10-rc", "build-2", "build-2",
        "prod,126", "prod,126", ""]
    terminal = strip_ansi(audit("show", run_id, "--audit-db", str(path), env=on_terminal(NO_COLOR="1")).stdout)
    assert "tags: build-10, build-10-rc" in terminal and "tags: prod, 126" in terminal
    assert "tags: build-2" not in terminal  # the untag's target names it already
    event = audit("show", list_event(path, 5), "--audit-db", str(path)).stdout.splitlines()
    assert "tags\tbuild-10,build-10-rc\tbuild-10,build-10-rc" in event

    exported = json.loads(audit("export", "--audit-db", str(path)).stdout)["actions"]
    assert [(a["repository"], a["tags"]) for a in exported][2:4] == [("ci/team-a/web", ["build-10", "build-10-rc"])] * 2
    assert (exported[-1]["repository"], exported[-1]["tags"]) == (None, None)
    jsonl = audit("export", "--format", "jsonl", "--audit-db", str(path)).stdout.splitlines()
    assert json.loads(jsonl[-2])["tags"] == ["prod", "126"]
    rows = list(csv.DictReader(io.StringIO(audit("export", "--format", "csv", "--audit-db", str(path)).stdout)))
    assert [(r["repository"], r["tags"]) for r in rows][6:] == [("prod/team-a/web", "prod,126")] * 2 + [("", "")]


def list_event(path: Path, seq: int) -> str:
    with AuditStore.open(path, read_only=True) as store:
        return store.conn.execute("SELECT event_id FROM actions WHERE seq = ?", (seq,)).fetchone()[0]


def test_the_table_shows_tags_under_the_target_and_a_digest_target_short(tagged: tuple[Path, str]) -> None:
    with AuditStore.open(tagged[0], read_only=True) as store:
        rows = list_actions(store, ActionFilter())
    cells = table_rows(recorded(render.actions_table(rows, NOW)).export_text())
    assert cells[4]["target"] == "ci/team-a/web@sha256:222222222222tags:build-10,build-10-rc"
    assert cells[6]["target"] == "ci/team-a/web:build-2"
    assert cells[8]["target"] == "prod/team-a/web@sha256:333333333333tags:prod,126"
    assert cells[10]["target"] == "ci"

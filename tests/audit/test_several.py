"""``reconcile audit … --db A --db B`` (or a directory): several audit trails, the shard files of a
sharded run, reviewed as one; ``audit verify`` checks each chain on its own."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import reconcile.cli.audit  # noqa: F401  (registers the command group)
from reconcile.audit import AuditStore
from reconcile.audit.query import ActionFilter
from reconcile.audit.several import AuditTrails, trail_names, trail_paths
from reconcile.audit.store import AuditError
from reconcile.cli import cli
from reconcile.render import audit as render

HOST = "cronjob-pod-0"
D_A, D_B, D_C = (f"sha256:{c * 64}" for c in "abc")
NAMES = ["audit.shard-0-of-3.db", "audit.shard-1-of-3.db", "audit.shard-2-of-3.db"]


def clock(*stamps: str) -> Callable[[], str]:
    remaining = iter(stamps)
    return lambda: next(remaining)


def at(second: int) -> str:
    return f"2026-11-21T08:00:{second:02d}.000000Z"


@dataclass
class Shards:
    directory: Path
    paths: list[Path]  # shard 0, 1, 2
    runs: list[str]  # one run per shard
    events: list[dict[int, dict[str, Any]]]  # per shard: seq -> actions row
    heads: list[str]

    @property
    def args(self) -> list[str]:
        return [arg for path in self.paths for arg in ("--db", str(path))]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RECONCILE_AUDIT_DB", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "COLUMNS", "LINES",
                 "PAGER", "MANPAGER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LESS", "FRX")
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)


@pytest.fixture
def shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Shards:
    """Three shards of one Indexed Job, their clocks interleaved (08:00:SS):

    shard 0: run starts 00, prune intent 02, succeeded 03, run ends 06
    shard 1: run starts 01, promote intent 04, succeeded 05, run ends 07
    shard 2: run starts 00, deploy intent 02, failed 08, untag intent 09 never answered (killed)
    """
    directory = tmp_path / "audit"
    paths = [directory / name for name in NAMES]
    runs, events, heads = [], [], []
    with monkeypatch.context() as patch:
        patch.setattr("reconcile.audit.store.socket.gethostname", lambda: HOST)  # the pods' host, not this one
        with AuditStore.open(paths[0], clock=clock(at(0), at(2), at(3), at(6))) as store:
            run = store.start_run("run", actor="cron")
            with run.mutation("prune", "ci/team-a/web:build-1", policy="RetentionPolicy/ci", digest_before=D_A):
                pass
            run.finish("succeeded")
            runs.append(run.id)
        with AuditStore.open(paths[1], clock=clock(at(1), at(4), at(5), at(7))) as store:
            run = store.start_run("run", actor="cron")
            with run.mutation("promote", "prod/web:prod", policy="PromotionPolicy/web", digest_before=D_A,
                              digest_after=D_B):
                pass
            run.finish("succeeded")
            runs.append(run.id)
        with AuditStore.open(paths[2], clock=clock(at(0), at(2), at(8), at(9))) as store:
            run = store.start_run("run", actor="cron")
            with pytest.raises(RuntimeError), run.mutation("deploy", "prod/web/Deployment/web",
                                                           policy="DeployPolicy/web", digest_before=D_B,
                                                           digest_after=D_C):
                raise RuntimeError("rollout timed out")
            run.append("untag", "ci/team-b/api:old", status="intent", policy="RetentionPolicy/b")
            runs.append(run.id)
    for path in paths:
        with AuditStore.open(path, read_only=True) as store:
            events.append({row["seq"]: dict(row) for row in store.conn.execute("SELECT * FROM actions")})
            heads.append(store.head())
    return Shards(directory, paths, runs, events, heads)


def audit(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["audit", *args], env=env)


def plain(result: Result) -> str:
    """A terminal's output without its styles (NO_COLOR keeps bold and dim)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)


def on_terminal(**extra: str) -> dict[str, str]:
    return {"FORCE_COLOR": "1", "NO_COLOR": "1", "COLUMNS": "220", "LINES": "500", **extra}


def tsv_rows(stdout: str) -> list[dict[str, str]]:
    header, *lines = stdout.splitlines()
    return [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]


def tamper(path: Path, statement: str) -> None:
    """Edit the trail around its append-only triggers, and put them back."""
    conn = sqlite3.connect(path)
    triggers = conn.execute("SELECT sql FROM sqlite_master WHERE name IN ('actions_no_update', 'actions_no_delete')"
                            ).fetchall()
    conn.executescript("DROP TRIGGER actions_no_update; DROP TRIGGER actions_no_delete;" + statement + ";"
                       + ";".join(sql for (sql,) in triggers))
    conn.close()


# Every action of the three shards in time order: (trail, kind, status, timestamp).
MERGED = [
    (NAMES[0], "prune", "intent", at(2)),  # 02 in shards 0 and 2: the order given decides
    (NAMES[2], "deploy", "intent", at(2)),
    (NAMES[0], "prune", "succeeded", at(3)),
    (NAMES[1], "promote", "intent", at(4)),
    (NAMES[1], "promote", "succeeded", at(5)),
    (NAMES[2], "deploy", "failed", at(8)),
    (NAMES[2], "untag", "intent", at(9)),
]


# --- which trails ------------------------------------------------------------------------------


def test_list_merges_the_trails_in_time_order_with_a_leading_trail_column(shards: Shards) -> None:
    result = audit("list", *shards.args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "\t".join(("trail", *render.ACTION_COLUMNS))
    rows = tsv_rows(result.stdout)
    assert [(r["trail"], r["kind"], r["status"], r["timestamp"]) for r in rows] == MERGED
    # each row is its trail's own, seq and all
    assert rows[1]["event_id"] == shards.events[2][2]["event_id"] and rows[1]["seq"] == "2"


def test_a_directory_is_every_trail_in_it_sorted_by_name_numbers_by_value(shards: Shards, tmp_path: Path) -> None:
    by_directory = audit("list", "--db", str(shards.directory))
    assert by_directory.exit_code == 0, by_directory.output
    assert by_directory.stdout == audit("list", *shards.args).stdout
    # shard-10 after shard-2; a file that is not *.db (a lock, a WAL, a note) is not a trail
    for name in ("audit.shard-10-of-11.db", "audit.shard-2-of-11.db"):
        shutil.copy(shards.paths[0], tmp_path / name)
    for other in ("notes.txt", "audit.shard-2-of-11.db.lock", "audit.shard-2-of-11.db-wal"):  # not *.db
        (tmp_path / other).write_text("not a trail")
    assert trail_names(trail_paths([tmp_path])) == ["audit.shard-2-of-11.db", "audit.shard-10-of-11.db"]


def test_a_file_in_the_directory_that_is_not_an_audit_trail_is_an_error_naming_it(shards: Shards) -> None:
    stray = shards.directory / "backup.db"
    stray.write_bytes(b"not sqlite at all, " * 100)
    result = audit("list", "--db", str(shards.directory))
    assert result.exit_code == 3
    assert str(stray) in result.stderr and result.stdout == ""
    stray.unlink()
    sqlite3.connect(shards.directory / "other.db").execute("CREATE TABLE t (x)").connection.close()
    other = audit("verify", "--db", str(shards.directory))
    assert other.exit_code == 3
    assert other.stderr == f"Error: {shards.directory / 'other.db'} is not a reconcile audit trail\n"


def test_an_empty_directory_or_a_missing_file_is_an_error(shards: Shards, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = audit("runs", "--db", str(empty))
    assert (result.exit_code, result.stderr) == (3, f"Error: no audit trail (*.db) in the directory {empty}\n")
    missing = audit("runs", "--db", str(shards.paths[0]), "--db", str(tmp_path / "gone.db"))
    assert (missing.exit_code, missing.stderr) == (3, f"Error: no audit trail at {tmp_path / 'gone.db'}\n")


def test_db_replaces_audit_db_and_works_on_the_group_too(shards: Shards) -> None:
    missing = {"RECONCILE_AUDIT_DB": "/nonexistent/audit.db"}
    result = audit("list", *shards.args, "--audit-db", "/nonexistent/audit.db", env=missing)
    assert result.exit_code == 0, result.output
    grouped = CliRunner().invoke(cli, ["audit", "--db", str(shards.paths[0]), "--db", str(shards.paths[1]),
                                       "list", "--db", str(shards.paths[2])], env=missing)
    assert grouped.exit_code == 0, grouped.output
    assert grouped.stdout == result.stdout


def test_a_trail_given_twice_is_read_once_and_shared_file_names_are_told_apart(shards: Shards,
                                                                               tmp_path: Path) -> None:
    twice = audit("runs", "--db", str(shards.directory), "--db", str(shards.paths[1]))
    assert [r["id"] for r in tsv_rows(twice.stdout)] == [shards.runs[0], shards.runs[2], shards.runs[1]]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(shards.paths[0], elsewhere / NAMES[0])
    assert trail_names([str(shards.paths[0]), str(elsewhere / NAMES[0]), str(shards.paths[1])]) == [
        str(shards.paths[0]), str(elsewhere / NAMES[0]), NAMES[1]]


# --- list, runs ------------------------------------------------------------------------------


def test_filters_and_the_limit_apply_across_the_trails(shards: Shards) -> None:
    failed = tsv_rows(audit("list", *shards.args, "--status", "failed").stdout)
    assert [(r["trail"], r["kind"]) for r in failed] == [(NAMES[2], "deploy")]
    of_run = tsv_rows(audit("list", *shards.args, "--run", shards.runs[1]).stdout)
    assert [(r["trail"], r["status"]) for r in of_run] == [(NAMES[1], "intent"), (NAMES[1], "succeeded")]
    newest = tsv_rows(audit("list", *shards.args, "--limit", "3").stdout)
    assert [(r["trail"], r["kind"], r["status"], r["timestamp"]) for r in newest] == MERGED[-3:]
    between = tsv_rows(audit("list", *shards.args, "--since", "2026-11-21T08:00:03Z",
                             "--until", "2026-11-21T08:00:06Z").stdout)
    assert [r["timestamp"] for r in between] == [at(3), at(4), at(5)]


def test_each_trails_chain_order_is_kept_even_when_its_clock_went_back(tmp_path: Path) -> None:
    with AuditStore.open(tmp_path / "a.db", clock=clock(at(0), at(5), at(1))) as store:  # clock stepped back
        run = store.start_run("run")
        run.append("skip", "x:1", status="skipped")
        run.append("skip", "x:2", status="skipped")
    with AuditStore.open(tmp_path / "b.db", clock=clock(at(0), at(3))) as store:
        store.start_run("run").append("skip", "y:1", status="skipped")
    with AuditTrails.open([tmp_path]) as trails:
        targets = [row["target"] for row in trails.actions(ActionFilter())]
    assert targets.index("x:1") < targets.index("x:2")
    assert targets == ["y:1", "x:1", "x:2"]


def test_list_on_a_terminal_has_a_trail_column(shards: Shards) -> None:
    result = audit("list", *shards.args, env=on_terminal())
    assert result.exit_code == 0, result.output
    text = plain(result)
    header = next(line for line in text.splitlines() if "seq" in line and "kind" in line)
    assert header.split()[:2] == ["trail", "seq"]
    assert "7 actions" in text
    failed_line = next(line for line in text.splitlines() if "rollout timed out" in line)
    assert failed_line.split()[0] == NAMES[2]


def test_runs_by_start_time_across_the_trails(shards: Shards) -> None:
    result = audit("runs", *shards.args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "\t".join(("trail", *render.RUN_COLUMNS))
    rows = tsv_rows(result.stdout)
    # 00 in shards 0 and 2 (the order given decides), then 01
    assert [(r["trail"], r["id"]) for r in rows] == [(NAMES[0], shards.runs[0]), (NAMES[2], shards.runs[2]),
                                                    (NAMES[1], shards.runs[1])]
    assert rows[1]["outcome"] == "unfinished"
    assert [r["id"] for r in tsv_rows(audit("runs", *shards.args, "--limit", "1").stdout)] == [shards.runs[1]]
    terminal = audit("runs", *shards.args, env=on_terminal())
    line = next(line for line in plain(terminal).splitlines() if shards.runs[2] in line)
    assert line.split()[:2] == [NAMES[2], shards.runs[2]] and "unfinished" in line


# --- show ------------------------------------------------------------------------------------


def test_show_finds_a_run_in_whichever_trail_holds_it(shards: Shards) -> None:
    result = audit("show", shards.runs[1], *shards.args)
    assert result.exit_code == 0, result.output
    fields, actions = result.stdout.split("\n\n")
    assert fields.splitlines()[:3] == ["field\tvalue", f"trail\t{NAMES[1]}", f"id\t{shards.runs[1]}"]
    assert [line.split("\t")[4] for line in actions.splitlines()[1:]] == ["promote", "promote"]
    terminal = audit("show", shards.runs[1], "--db", str(shards.directory), env=on_terminal())
    assert re.search(rf"^trail\s+{re.escape(NAMES[1])}\s*$", plain(terminal), re.M)


def test_show_an_event_pairs_it_with_its_intent_in_the_same_trail(shards: Shards) -> None:
    failed = shards.events[2][3]
    result = audit("show", failed["event_id"], *shards.args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:2] == ["field\tbefore\tafter", f"trail\t{NAMES[2]}\t{NAMES[2]}"]
    assert "status\tintent\tfailed" in lines
    single = audit("show", shards.events[1][2]["event_id"], "--db", str(shards.directory), env=on_terminal())
    assert single.exit_code == 0 and re.search(rf"^trail\s+{re.escape(NAMES[1])}\s+{re.escape(NAMES[1])}\s*$",
                                               plain(single), re.M)
    assert "AFTER: outcome" in single.stdout


def test_show_an_unknown_id_names_every_trail_and_a_copied_trail_is_ambiguous(shards: Shards,
                                                                              tmp_path: Path) -> None:
    result = audit("show", "run-20261121T000000-00000000", *shards.args)
    assert result.exit_code == 1
    assert result.stderr == ("Error: no run run-20261121T000000-00000000 in the audit trails "
                             f"{', '.join(NAMES)}\n")
    copy = tmp_path / "copy.db"
    shutil.copy(shards.paths[0], copy)
    twice = audit("show", shards.runs[0], *shards.args, "--db", str(copy))
    assert twice.exit_code == 1
    assert twice.stderr == (f"Error: run {shards.runs[0]} is in more than one audit trail: {NAMES[0]}, copy.db "
                            "(give one with --db)\n")


# --- export ----------------------------------------------------------------------------------


def test_export_json_and_jsonl_give_each_run_and_action_its_trail(shards: Shards) -> None:
    data = json.loads(audit("export", *shards.args).stdout)
    assert [(r["trail"], r["id"]) for r in data["runs"]] == [(NAMES[0], shards.runs[0]), (NAMES[2], shards.runs[2]),
                                                            (NAMES[1], shards.runs[1])]
    assert [(a["trail"], a["kind"], a["status"], a["timestamp"]) for a in data["actions"]] == MERGED
    assert data["actions"][0] == {"trail": NAMES[0], **shards.events[0][2], "dry_run": False, "tags": None}
    assert next(iter(data["actions"][0])) == "trail"
    objects = [json.loads(line) for line in audit("export", "--format", "jsonl", *shards.args).stdout.splitlines()]
    assert [o["type"] for o in objects] == ["run"] * 3 + ["action"] * 7
    assert all(o["trail"] in NAMES for o in objects)


def test_export_csv_has_a_leading_trail_column(shards: Shards) -> None:
    reader = csv.DictReader(io.StringIO(audit("export", "--format", "csv", *shards.args).stdout, newline=""))
    rows = list(reader)
    assert reader.fieldnames == ["trail", *render.ACTION_COLUMNS, "prev_hash", "hash"]
    assert [(r["trail"], r["kind"], r["status"], r["timestamp"]) for r in rows] == MERGED
    assert rows[0]["hash"] == shards.events[0][2]["hash"]


def test_export_with_filters_keeps_the_runs_of_the_exported_actions_in_their_trails(shards: Shards) -> None:
    data = json.loads(audit("export", "--action", "deploy", *shards.args).stdout)
    assert [(r["trail"], r["id"]) for r in data["runs"]] == [(NAMES[2], shards.runs[2])]
    assert {a["trail"] for a in data["actions"]} == {NAMES[2]}


# --- verify ----------------------------------------------------------------------------------


def test_verify_checks_each_chain_and_prefixes_its_lines_and_warnings(shards: Shards) -> None:
    result = audit("verify", "--db", str(shards.directory))
    assert result.exit_code == 0, result.output
    assert result.stdout == "".join(f"{name}: ok: 4 entries, head {head}\n"
                                    for name, head in zip(NAMES, shards.heads, strict=True))
    assert result.stderr == (
        f"warning: {NAMES[2]}: run {shards.runs[2]} (started {at(0)}, cron@{HOST}) never finished; "
        f"1 intent without outcome: {shards.events[2][4]['event_id']} (untag ci/team-b/api:old)\n")


def test_one_broken_chain_among_several_exits_1_and_names_it(shards: Shards) -> None:
    tamper(shards.paths[1], "UPDATE actions SET target = 'prod/web:canary' WHERE seq = 3")
    result = audit("verify", "--db", str(shards.directory))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{NAMES[0]}: ok: 4 entries, head {shards.heads[0]}",
        f"{NAMES[1]}: broken: actions seq 3: its content does not match its hash (edited after it was written)",
        f"{NAMES[2]}: ok: 4 entries, head {shards.heads[2]}",
    ]


def test_expect_head_per_trail(shards: Shards) -> None:
    heads = [f"--expect-head={name}={head}" for name, head in zip(NAMES, shards.heads, strict=True)]
    assert audit("verify", *shards.args, *heads).exit_code == 0
    # a removed tail in one shard: only a head kept for it catches it
    tamper(shards.paths[2], "DELETE FROM actions WHERE seq = 4")
    unexpected = audit("verify", *shards.args)
    assert unexpected.exit_code == 0 and unexpected.stdout.splitlines()[2].startswith(f"{NAMES[2]}: ok: 3 entries")
    result = audit("verify", *shards.args, *heads)
    assert result.exit_code == 1
    *others, last = result.stdout.splitlines()
    assert last.startswith(f"{NAMES[2]}: broken: actions seq 3: the expected head {shards.heads[2]} is not in "
                           "the trail")
    assert [line.split(": ")[1] for line in others] == ["ok", "ok"]


def test_expect_head_for_a_trail_not_given_is_broken_and_a_bare_one_is_a_usage_error(shards: Shards) -> None:
    # shard 2's file went missing: its kept head says it should be there
    result = audit("verify", "--db", str(shards.paths[0]), "--db", str(shards.paths[1]),
                   "--expect-head", f"{NAMES[2]}={shards.heads[2]}")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == (
        f"{NAMES[2]}: broken: no such trail among those given, but its head {shards.heads[2]} was expected "
        "(a trail went missing, or the name is wrong)")
    bare = audit("verify", *shards.args, "--expect-head", shards.heads[0])
    assert bare.exit_code == 2 and "with several trails, say whose head it is: TRAIL=HASH" in bare.stderr
    twice = audit("verify", *shards.args, "--expect-head", f"{NAMES[0]}={shards.heads[0]}",
                  "--expect-head", f"{NAMES[0]}={shards.heads[1]}")
    assert twice.exit_code == 2 and f"more than one expected head for the trail {NAMES[0]}" in twice.stderr
    help_text = audit("verify", "--help").stdout
    assert "[TRAIL=]HASH" in help_text and "--db PATH" in help_text


# --- one trail: as before --------------------------------------------------------------------


ONE_TRAIL_COMMANDS = [["list"], ["list", "--status", "failed"], ["runs"], ["show", "{run}"], ["show", "{evt}"],
                      ["export"], ["export", "--format", "csv"], ["export", "--format", "jsonl"], ["verify"],
                      ["verify", "--expect-head", "{head}"]]


@pytest.mark.parametrize("args", ONE_TRAIL_COMMANDS, ids=lambda args: "-".join(args))
@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
def test_one_trail_by_db_or_a_directory_of_one_is_the_audit_db_output(shards: Shards, tmp_path: Path,
                                                                      args: list[str], terminal: bool) -> None:
    alone = tmp_path / "alone"
    alone.mkdir()
    path = alone / NAMES[2]
    shutil.copy(shards.paths[2], path)
    args = [a.format(run=shards.runs[2], evt=shards.events[2][3]["event_id"], head=shards.heads[2]) for a in args]
    env = on_terminal() if terminal else None
    expected = audit(*args, "--audit-db", str(path), env=env)
    assert expected.exit_code == 0, expected.output
    assert "trail" not in expected.stdout.splitlines()[0]
    for db in (path, alone):
        result = audit(*args, "--db", str(db), env=env)
        assert (result.exit_code, result.stdout, result.stderr) == (0, expected.stdout, expected.stderr), db


def test_one_trail_rows_carry_no_trail_key(shards: Shards) -> None:
    with AuditTrails.open([shards.paths[0]]) as trails:
        assert not trails.several
        assert all("trail" not in row for row in trails.actions(ActionFilter()))
    with AuditTrails.open(shards.paths) as trails:
        assert {row["trail"] for row in trails.actions(ActionFilter())} == set(NAMES)


def test_the_review_does_not_modify_any_trail(shards: Shards) -> None:
    before = [(p.read_bytes(), p.stat().st_mtime_ns) for p in shards.paths]
    files = sorted(p.name for p in shards.directory.iterdir())
    for args in (["list"], ["runs"], ["show", shards.runs[1]], ["export"], ["verify"]):
        assert audit(*args, "--db", str(shards.directory)).exit_code == 0, args
    assert [(p.read_bytes(), p.stat().st_mtime_ns) for p in shards.paths] == before
    assert sorted(p.name for p in shards.directory.iterdir()) == files


def test_opening_stops_at_the_first_bad_trail_and_leaves_none_open(shards: Shards, tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="no audit trail at"):
        AuditTrails.open([shards.paths[0], tmp_path / "missing.db"])

"""Commands that change things take turns on one audit trail: `run` gives up at once when another
holds the lock, `apply`, `rollback` and `release-hold` wait for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from reconcile.cli import cli

POLICIES = str(Path(__file__).resolve().parents[1] / "policies")
# Take the lock, say so, hold it a while, and leave a mark just before letting go.
HOLD = ("import fcntl, pathlib, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('locked', flush=True); time.sleep(float(sys.argv[2])); pathlib.Path(sys.argv[3]).touch(); f.close()")


def test_run_gives_up_and_release_hold_waits_for_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    finished = tmp_path / "holder-finished"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, f"{db}.lock", "2", str(finished)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        run = CliRunner().invoke(cli, ["run", "--repo", POLICIES, "--audit-db", str(db)])
        assert run.exit_code == 1
        assert f"another reconcile run holds {db}.lock" in run.output
        assert not finished.exists()  # it did not wait
        released = CliRunner().invoke(cli, ["release-hold", "prod-web", "--repo", POLICIES, "--audit-db", str(db)])
        assert released.exit_code == 0, released.output
        assert f"waiting for the reconcile command holding {db}.lock to finish" in released.stderr
        assert "DeployPolicy prod-web holds nothing back" in released.stderr
        assert finished.exists()  # it went on only once the holder had let go
    finally:
        holder.kill()
        holder.wait()

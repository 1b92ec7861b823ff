"""Tests for the ``reconcile`` command line: global options before or after the command name,
RECONCILE_* environment variables, ``validate``'s output formats and exit status, and errors
reported as one line instead of a traceback. Mostly through click's CliRunner; one test runs
``python -m reconcile`` for real."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import reconcile
import reconcile.cli.validate  # registers the command on the group
from reconcile.cli import cli
from tests.repos import commit, init_repo, write

PROJECT = Path(__file__).resolve().parents[1]
EXAMPLE = PROJECT / "policies"
ENV_VARS = ("RECONCILE_REPO", "RECONCILE_REF", "RECONCILE_AUDIT_DB")

REGISTRY = """\
apiVersion: reconcile/v1
kind: Registry
metadata:
  name: ci
spec:
  url: https://registry.ci.example.com
"""


def retention(name: str, registry: str) -> str:
    """A RetentionPolicy whose ``registry`` reference is on line 6."""
    return f"""\
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata:
  name: {name}
spec:
  registry: {registry}
  repositories: ["team-a/*"]
  keep:
    - tags: '^v\\d+$'
      last: 10
"""


VALID = {"registries.yaml": REGISTRY, "retention.yaml": retention("ci-cleanup", "ci")}
# Three problems in two files (the second document of other.yaml starts on line 12).
INVALID = {
    "registries.yaml": REGISTRY,
    "retention.yaml": retention("ci-cleanup", "nope"),
    "other.yaml": retention("other", "nope") + "---\n" + retention("other2", "gone"),
}
# (path below the repo, line, subject, message) of INVALID's problems, in output order.
INVALID_PROBLEMS = [
    ("other.yaml", 6, "RetentionPolicy/other", "/spec/registry: unknown Registry 'nope' (known: ci)"),
    ("other.yaml", 17, "RetentionPolicy/other2", "/spec/registry: unknown Registry 'gone' (known: ci)"),
    ("retention.yaml", 6, "RetentionPolicy/ci-cleanup", "/spec/registry: unknown Registry 'nope' (known: ci)"),
]


# --- helpers ---------------------------------------------------------------------------------


def run(args: Sequence[str], env: dict[str, str] | None = None) -> Result:
    """Invoke the CLI; anything but a clean exit (0, or sys.exit/click's own) fails the test."""
    result = CliRunner().invoke(cli, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail("".join(traceback.format_exception(*result.exc_info)))
    return result


def problem_lines(root: Path) -> list[str]:
    return [f"{root}/{path}:{line}: {subject}: {message}" for path, line, subject, message in INVALID_PROBLEMS]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No RECONCILE_* from the outer environment, and a working directory that holds no policies."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)


@pytest.fixture
def valid(tmp_path: Path) -> Path:
    return write(tmp_path / "valid", VALID)


@pytest.fixture
def invalid(tmp_path: Path) -> Path:
    return write(tmp_path / "invalid", INVALID)


@pytest.fixture
def history(tmp_path: Path) -> tuple[Path, str, str]:
    """A git repo-of-record: a valid commit, then one that breaks retention.yaml."""
    root = tmp_path / "git"
    with init_repo(root) as repo:
        good = commit(repo, VALID, "valid policies")
        bad = commit(repo, {"retention.yaml": retention("ci-cleanup", "nope")}, "break it")
    return root, good, bad


# --- the group ---------------------------------------------------------------------------------


def test_help_lists_validate_and_the_environment_variables() -> None:
    result = run(["--help"])
    assert result.exit_code == 0
    assert re.search(r"^Commands:\n(?:\s+[\w-]+\s.*\n)*?\s+validate\s", result.stdout, re.M)
    for name in ENV_VARS:
        assert name in result.stdout
    for option in ("--repo", "--ref", "--audit-db", "--version"):
        assert option in result.stdout


def test_validate_help_lists_the_formats_and_the_global_options() -> None:
    result = run(["validate", "--help"])
    assert result.exit_code == 0
    for text in ("--format", "text|json|github", "--repo", "--ref"):
        assert text in result.stdout


def test_plan_help_lists_the_formats_and_the_markdown_limit() -> None:
    result = run(["plan", "--help"])
    assert result.exit_code == 0
    for text in ("rich|markdown|json|github", "--github-step-summary", "--markdown-limit", "RECONCILE_MARKDOWN_LIMIT",
                 "65536", "1000000", "--detailed-exitcode"):
        assert text in result.stdout
    assert run(["plan", "--format", "xml"]).exit_code == 2


def test_version() -> None:
    result = run(["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"reconcile, version {reconcile.__version__}\n"


def test_the_example_repo_of_record_is_valid() -> None:
    result = run(["validate", "--repo", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert re.search(r"^valid: \d+ documents \(\d+ Registry, .*\)( at commit [0-9a-f]{12})?$", result.stderr, re.M)


# --- where options come from -----------------------------------------------------------------


PLACEMENTS = [
    # (id, arguments, environment, exit status); "V" is the valid repo, "I" the invalid one
    ("group-option", ["--repo", "V", "validate"], {}, 0),
    ("command-option", ["validate", "--repo", "V"], {}, 0),
    ("group-option-invalid", ["--repo", "I", "validate"], {}, 1),
    ("command-option-invalid", ["validate", "--repo", "I"], {}, 1),
    ("env", ["validate"], {"RECONCILE_REPO": "V"}, 0),
    ("env-invalid", ["validate"], {"RECONCILE_REPO": "I"}, 1),
    ("group-option-beats-env", ["--repo", "V", "validate"], {"RECONCILE_REPO": "I"}, 0),
    ("command-option-beats-env", ["validate", "--repo", "V"], {"RECONCILE_REPO": "I"}, 0),
    ("group-option-beats-env-2", ["--repo", "I", "validate"], {"RECONCILE_REPO": "V"}, 1),
    ("command-option-beats-env-2", ["validate", "--repo", "I"], {"RECONCILE_REPO": "V"}, 1),
    ("command-option-beats-group-option", ["--repo", "I", "validate", "--repo", "V"], {}, 0),
]


@pytest.mark.parametrize(("args", "env", "status"), [case[1:] for case in PLACEMENTS],
                         ids=[case[0] for case in PLACEMENTS])
def test_where_the_repo_option_comes_from(valid: Path, invalid: Path, args: list[str], env: dict[str, str],
                                          status: int) -> None:
    paths = {"V": str(valid), "I": str(invalid)}
    result = run([paths.get(arg, arg) for arg in args], env={k: paths[v] for k, v in env.items()})
    assert result.exit_code == status, result.output
    if status:
        assert result.stdout.splitlines() == problem_lines(invalid)
    else:
        assert result.stdout == ""
        assert result.stderr == "valid: 2 documents (1 Registry, 1 RetentionPolicy)\n"


def test_the_default_repo_is_the_working_directory(valid: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(valid)
    assert run(["validate"]).exit_code == 0
    monkeypatch.chdir(valid.parent / "cwd")
    assert run(["validate"]).stderr == "valid: 0 documents (none)\n"


def test_the_ref_selects_the_commit(history: tuple[Path, str, str]) -> None:
    root, good, bad = history
    broken = f"{root}/retention.yaml:6: RetentionPolicy/ci-cleanup: /spec/registry: unknown Registry 'nope' (known: ci)"
    cases = [
        # (arguments after the repo, environment, commit read)
        (["validate"], {}, bad),
        (["validate"], {"RECONCILE_REF": good}, good),
        (["validate"], {"RECONCILE_REF": "HEAD~1"}, good),
        (["validate", "--ref", "HEAD~1"], {}, good),
        (["--ref", good, "validate"], {}, good),
        (["--ref", "HEAD~1", "validate"], {"RECONCILE_REF": bad}, good),
        (["validate", "--ref", "HEAD~1"], {"RECONCILE_REF": bad}, good),
        (["validate", "--ref", bad], {"RECONCILE_REF": good}, bad),
    ]
    for args, env, read in cases:
        result = run(["--repo", str(root), *args], env={"RECONCILE_REPO": "/nonexistent", **env})
        case = (args, env)
        if read == good:
            assert result.exit_code == 0, (case, result.output)
            assert result.stderr == f"valid: 2 documents (1 Registry, 1 RetentionPolicy) at commit {good[:12]}\n"
        else:
            assert result.exit_code == 1, (case, result.output)
            assert result.stdout == broken + "\n", case
            assert result.stderr == f"1 problem in 1 file at commit {bad[:12]}\n", case


def test_uncommitted_changes_are_noted_not_validated(history: tuple[Path, str, str]) -> None:
    root, _good, bad = history
    (root / "retention.yaml").write_text(retention("ci-cleanup", "ci"))  # fixed, not committed
    result = run(["validate", "--repo", str(root)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"note: read {root} at commit {bad[:12]}; uncommitted changes there are not validated "
        "(commit them, or pass --ref)",
        f"1 problem in 1 file at commit {bad[:12]}",
    ]
    explicit = run(["validate", "--repo", str(root), "--ref", "HEAD~1"])
    assert explicit.exit_code == 0
    assert "note:" not in explicit.stderr


# --- output ----------------------------------------------------------------------------------


SUMMARIES = [
    # (id, files, the problems reported (of INVALID_PROBLEMS), summary)
    ("3-in-2", INVALID, INVALID_PROBLEMS, "3 problems in 2 files"),
    ("1-in-1", {**VALID, "retention.yaml": retention("ci-cleanup", "nope")}, INVALID_PROBLEMS[2:],
     "1 problem in 1 file"),
    ("2-in-1", {**VALID, "other.yaml": INVALID["other.yaml"]}, INVALID_PROBLEMS[:2], "2 problems in 1 file"),
    ("2-in-2", {**INVALID, "other.yaml": retention("other", "nope")}, INVALID_PROBLEMS[::2], "2 problems in 2 files"),
]


@pytest.mark.parametrize(("files", "problems", "summary"), [case[1:] for case in SUMMARIES],
                         ids=[case[0] for case in SUMMARIES])
def test_invalid_text_output_and_summary(tmp_path: Path, files: dict[str, str],
                                         problems: list[tuple[str, int, str, str]], summary: str) -> None:
    root = write(tmp_path / "repo", files)
    result = run(["validate", "--repo", str(root)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [f"{root}/{path}:{line}: {subject}: {message}"
                                          for path, line, subject, message in problems]
    assert result.stderr == summary + "\n"


def test_invalid_exact_text_output(invalid: Path) -> None:
    result = run(["validate", "--repo", str(invalid), "--format", "text"])
    assert result.exit_code == 1
    assert result.stdout == (
        f"{invalid}/other.yaml:6: RetentionPolicy/other: /spec/registry: unknown Registry 'nope' (known: ci)\n"
        f"{invalid}/other.yaml:17: RetentionPolicy/other2: /spec/registry: unknown Registry 'gone' (known: ci)\n"
        f"{invalid}/retention.yaml:6: RetentionPolicy/ci-cleanup: /spec/registry: unknown Registry 'nope' "
        "(known: ci)\n")
    assert result.stderr == "3 problems in 2 files\n"


def test_json_output(invalid: Path, valid: Path) -> None:
    result = run(["validate", "--repo", str(invalid), "--format", "json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "valid": False, "commit": None, "documents": 4,
        "problems": [{"path": f"{invalid}/{path}", "line": line, "subject": subject, "severity": "error",
                      "message": message}
                     for path, line, subject, message in INVALID_PROBLEMS]}
    assert result.stderr == "3 problems in 2 files\n"

    ok = run(["--repo", str(valid), "validate", "--format", "json"])
    assert ok.exit_code == 0
    assert json.loads(ok.stdout) == {"valid": True, "commit": None, "documents": 2, "problems": []}


def test_json_output_names_the_commit(history: tuple[Path, str, str]) -> None:
    root, good, _bad = history
    result = run(["validate", "--repo", str(root), "--ref", "HEAD~1", "--format", "json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["commit"] == good


def test_github_output(invalid: Path) -> None:
    result = run(["validate", "--repo", str(invalid), "--format", "github"])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"::error file={invalid}/{path},line={line}::{subject}: {message}"
        for path, line, subject, message in INVALID_PROBLEMS]
    assert result.stderr == "3 problems in 2 files\n"


def test_problems_without_a_subject(tmp_path: Path) -> None:
    root = write(tmp_path / "repo", VALID)
    write(tmp_path, {"outside.yaml": REGISTRY})
    os.symlink("../outside.yaml", root / "evil.yaml")
    message = "is a symlink (to '../outside.yaml'); only regular files are read, symlinks are never followed"
    text = run(["validate", "--repo", str(root)])
    assert text.stdout == f"{root}/evil.yaml:1: {message}\n"
    github = run(["validate", "--repo", str(root), "--format", "github"])
    assert github.stdout == f"::error file={root}/evil.yaml,line=1::{message}\n"
    as_json = json.loads(run(["validate", "--repo", str(root), "--format", "json"]).stdout)
    assert as_json["problems"] == [{"path": f"{root}/evil.yaml", "line": 1, "subject": None,
                                   "severity": "error", "message": message}]


def test_an_unknown_format_is_a_usage_error(valid: Path) -> None:
    result = run(["validate", "--repo", str(valid), "--format", "xml"])
    assert result.exit_code == 2
    assert "'xml' is not one of 'text', 'json', 'github'" in result.stderr


# --- errors ----------------------------------------------------------------------------------


SOURCE_ERRORS = [
    # (id, arguments with R for the git repo and P for a plain directory, the error line)
    ("nonexistent", ["validate", "--repo", "{tmp}/missing"], "repo-of-record '{tmp}/missing' does not exist"),
    ("nonexistent-group-option", ["--repo", "{tmp}/missing", "validate"],
     "repo-of-record '{tmp}/missing' does not exist"),
    ("ref-for-a-plain-directory", ["validate", "--repo", "{tmp}/valid", "--ref", "main"],
     "--ref 'main' given, but '{tmp}/valid' is not a git repository"),
    ("unknown-ref", ["validate", "--repo", "{tmp}/git", "--ref", "no-such-branch"],
     "unknown git ref 'no-such-branch' in '{tmp}/git'"),
    ("unknown-reflog-ref", ["validate", "--repo", "{tmp}/git", "--ref", "no-such-branch@{{1}}"],
     "unknown git ref 'no-such-branch@{{1}}' in '{tmp}/git'"),
]


@pytest.mark.parametrize(("args", "error"), [case[1:] for case in SOURCE_ERRORS],
                         ids=[case[0] for case in SOURCE_ERRORS])
def test_source_errors_are_one_line_without_traceback(tmp_path: Path, valid: Path, history: tuple[Path, str, str],
                                                      args: list[str], error: str) -> None:
    result = CliRunner().invoke(cli, [arg.format(tmp=tmp_path) for arg in args])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), "".join(traceback.format_exception(*result.exc_info))
    assert result.stdout == ""
    assert result.stderr == f"Error: {error.format(tmp=tmp_path)}\n"
    assert "Traceback" not in result.output


# --- for real --------------------------------------------------------------------------------


def test_python_dash_m_reconcile_validate(invalid: Path, tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name not in ENV_VARS}
    completed = subprocess.run(
        [sys.executable, "-m", "reconcile", "validate", "--repo", str(invalid)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False)
    assert completed.returncode == 1, completed.stderr
    assert completed.stdout.splitlines() == problem_lines(invalid)
    assert completed.stderr == "3 problems in 2 files\n"


def test_commands_that_reach_no_cluster_do_not_import_the_kubernetes_client() -> None:
    """It is most of the start-up time of `--help`, `validate` and `audit`: imported on first use."""
    probe = "import sys, reconcile.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert run.stdout.strip() == "[]"


def test_an_unreadable_audit_trail_releases_nothing(tmp_path: Path) -> None:
    """Holds live in the trail: when it cannot be read, nothing is said to be released (plans deploy
    nothing then either: tests/plan/test_deploy.py)."""
    trail = tmp_path / "audit.db"
    trail.write_bytes(b"not a database, a truncated copy perhaps")
    released = run(["release-hold", "prod-web", "--repo", str(EXAMPLE), "--audit-db", str(trail)])
    assert released.exit_code == 1
    assert f"nothing released: the audit trail could not be read: cannot open the audit trail {trail}" in \
        released.output
    assert trail.read_bytes() == b"not a database, a truncated copy perhaps"

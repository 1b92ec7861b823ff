"""Settings (issue 18): every option of every command has a RECONCILE_* variable, shown by its
--help; the commands that plan take --only; the default audit trail and cache live in the XDG
directories, never the working directory (an older version's ./reconcile-audit.db is never passed
over silently); ``reconcile config`` shows the settings in effect and where each came from."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import click
import git
import pytest
from click.testing import CliRunner, Result

from reconcile import defaults
from reconcile.cli import cli
from reconcile.cli.config import settings_markdown
from reconcile.quickstart.sandbox import Sandbox, build, prepare

ROOT = Path(__file__).resolve().parents[1]
POLICIES = str(ROOT / "policies")
NOT_SETTINGS = {"help", "version"}  # --help and --version answer and exit: nothing to set


def commands(command: click.Command = cli,
             path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from commands(sub, (*path, name))


def options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and p.name not in NOT_SETTINGS]


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No RECONCILE_* from outside, and a working directory of the test's own."""
    import os

    for name in [n for n in os.environ if n.startswith("RECONCILE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    now = datetime.now(UTC)
    prepare(tmp_path / "sandbox", force=False, now=now)
    return build(tmp_path / "sandbox", now)


# --- every option has a variable -----------------------------------------------------------------


def test_the_walk_sees_every_command() -> None:
    paths = {" ".join(path) for path, _ in commands()}
    assert {"", "plan", "apply", "run", "explain", "validate", "rollback", "release-hold", "comment", "quickstart",
            "config", "audit", "audit list", "audit runs", "audit show", "audit export", "audit verify"} <= paths


@pytest.mark.parametrize(("path", "command"), list(commands()), ids=lambda v: " ".join(v) or "reconcile"
                         if isinstance(v, tuple) else "")
def test_every_option_has_a_variable_its_help_names(path: tuple[str, ...], command: click.Command) -> None:
    """A new option without a RECONCILE_* variable (or one --help does not show) fails here."""
    shown = " ".join(invoke(*path, "--help").stdout.split())  # (the help wraps lines anywhere)
    for option in options(command):
        assert isinstance(option.envvar, str) and re.fullmatch(r"RECONCILE_[A-Z0-9_]+", option.envvar), \
            f"{' '.join(path)} {option.opts[0]}: no RECONCILE_* variable (envvar=…)"
        assert re.search(rf"\[env var: {option.envvar}[;\]]", shown), \
            f"{' '.join(path)} {option.opts[0]}: not in --help"


def test_one_variable_means_one_option() -> None:
    """A variable two commands read is the same option on both (--only, --yes, audit's filters)."""
    seen: dict[str, set[str]] = {}
    for _, command in commands():
        for option in options(command):
            seen.setdefault(str(option.envvar), set()).add(option.opts[0])
    assert {env: opts for env, opts in seen.items() if len(opts) > 1} == {}
    assert seen["RECONCILE_FORMAT"] == {"--format"} and "RECONCILE_VALIDATE_FORMAT" in seen


def test_the_commands_that_plan_take_only() -> None:
    for name in ("plan", "apply", "run", "explain"):
        only = [o for o in cli.commands[name].params if o.name == "only"]
        assert only and only[0].envvar == "RECONCILE_ONLY", name
        assert "--only KIND/NAME" in invoke(name, "--help").stdout


@pytest.mark.parametrize(("value", "on"), [("1", True), ("true", True), ("TRUE", True), ("yes", True), ("on", True),
                                           ("y", True), ("0", False), ("false", False), ("No", False), ("off", False),
                                           ("", False)])
def test_flags_take_the_usual_spellings(value: str, on: bool) -> None:
    result = invoke("config", "--format", "json", env={"RECONCILE_DEBUG": value})
    assert result.exit_code == 0, result.output
    (debug,) = [s for s in json.loads(result.stdout) if s["name"] == "debug"]
    assert debug["value"] is on
    assert debug["source"] == ("environment variable RECONCILE_DEBUG" if value else "default")


@pytest.mark.parametrize(("args", "env", "option"), [
    (["config"], {"RECONCILE_DEBUG": "maybe"}, "--debug"),
    (["plan", "--repo", POLICIES], {"RECONCILE_DETAILED_EXITCODE": "sometimes"}, "--detailed-exitcode"),
    (["plan", "--repo", POLICIES], {"RECONCILE_FORMAT": "yaml"}, "--format"),
    (["audit", "list"], {"RECONCILE_AUDIT_LIMIT": "many"}, "--limit"),
])
def test_an_invalid_value_is_an_error_naming_the_variable(args: list[str], env: dict[str, str], option: str) -> None:
    result = invoke(*args, env=env)
    (name,) = env
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}' (from the environment variable {name}): '{env[name]}'" in result.stderr


def test_a_value_typed_on_the_command_line_is_not_blamed_on_the_variable() -> None:
    result = invoke("audit", "list", "--since", "yesterday")
    assert result.exit_code == 2 and "Invalid value for '--since': 'yesterday'" in result.stderr


def test_format_and_detailed_exitcode_from_the_environment(sandbox: Sandbox) -> None:
    """The two the issue found ignored: a plan with changes, as JSON, exit status 2."""
    args = ["plan", "--repo", str(sandbox.policies), "--audit-db", str(sandbox.root / "audit.db")]
    plain = invoke(*args)
    assert plain.exit_code == 0 and not plain.stdout.startswith("{")
    result = invoke(*args, env={"RECONCILE_FORMAT": "json", "RECONCILE_DETAILED_EXITCODE": "true"})
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["hasChanges"] is True
    assert invoke(*args, "--format", "markdown", env={"RECONCILE_FORMAT": "json"}).stdout.startswith("#")  # option wins
    assert invoke(*args, env={"RECONCILE_DETAILED_EXITCODE": "0"}).exit_code == 0


def test_explain_only_plans_one_policy(sandbox: Sandbox) -> None:
    args = ["explain", "--repo", str(sandbox.policies), "--audit-db", str(sandbox.root / "audit.db")]
    everything = invoke(*args, "build-126")
    assert everything.exit_code == 0, everything.output
    assert "keep — RetentionPolicy/ci-cleanup" in everything.stdout
    retention = invoke(*args, "build-126", env={"RECONCILE_ONLY": "RetentionPolicy/ci-cleanup"})
    def ageless(text: str) -> str:  # (a second may pass between the two)
        return re.sub(r"created \S+ ago", "created … ago", text)

    assert retention.exit_code == 0 and ageless(retention.stdout) == ageless(everything.stdout), retention.output
    promotion = invoke(*args, "build-126", "--only", "PromotionPolicy/web")  # retention not planned
    assert promotion.exit_code == 0 and "RetentionPolicy" not in promotion.stdout, promotion.output
    same = invoke(*args, "PromotionPolicy/web", "--only", "PromotionPolicy/web")
    assert same.exit_code == 0 and same.stdout == invoke(*args, "PromotionPolicy/web").stdout
    other = invoke(*args, "PromotionPolicy/web", "--only", "RetentionPolicy/ci-cleanup")
    assert other.exit_code == 1 and "explaining PromotionPolicy/web plans PromotionPolicy/web alone" in other.stderr
    unknown = invoke(*args, "build-126", "--only", "RetentionPolicy/nope")
    assert unknown.exit_code == 1 and "--only RetentionPolicy/nope: no such policy" in unknown.stderr


# --- where reconcile writes -----------------------------------------------------------------------


def test_the_default_paths_are_the_xdg_directories(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RECONCILE_CACHE_DIR")
    for name in ("XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    assert defaults.audit_db() == str(tmp_path / "home/.local/state/reconcile/audit.db")
    assert defaults.cache_dir() == tmp_path / "home/.cache/reconcile"
    assert (defaults.audit_db_source(), defaults.cache_dir_source()) == ("default", "default")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xcache"))
    assert defaults.audit_db() == str(tmp_path / "state/reconcile/audit.db")
    assert defaults.cache_dir() == tmp_path / "xcache/reconcile"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # invalid by the spec: never the working directory
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")
    assert defaults.audit_db() == str(tmp_path / "home/.local/state/reconcile/audit.db")
    assert defaults.cache_dir() == tmp_path / "home/.cache/reconcile"
    monkeypatch.setenv("RECONCILE_CACHE_DIR", "/var/lib/reconcile/cache")
    assert (defaults.cache_dir(), defaults.cache_dir_source()) == (Path("/var/lib/reconcile/cache"),
                                                                   "RECONCILE_CACHE_DIR")


def test_a_run_in_the_repo_of_record_writes_nothing_there(sandbox: Sandbox, state_home: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`reconcile apply` in a checkout of the repo-of-record, without --audit-db: the trail goes to
    the state directory, the checkout stays clean and `validate` has no uncommitted change to note."""
    monkeypatch.chdir(sandbox.policies)
    applied = invoke("apply", "--yes")
    assert applied.exit_code == 0, applied.output
    trail = state_home / "reconcile" / "audit.db"
    assert trail.is_file() and Path(f"{trail}.lock").is_file()
    assert "audit: run run-" in applied.stderr
    assert git.Repo(sandbox.policies).git.status("--porcelain", "--ignored") == ""
    assert not list(sandbox.policies.glob("*.db*"))
    validated = invoke("validate")
    assert validated.exit_code == 0 and "uncommitted" not in validated.output, validated.output
    runs = invoke("audit", "runs")  # and the review commands find it there
    assert runs.exit_code == 0 and "\tapply\t" in runs.stdout


LEGACY = defaults.LEGACY_AUDIT_DB


def test_an_older_default_trail_here_is_never_passed_over_silently(tmp_path: Path, state_home: Path) -> None:
    legacy = Path(LEGACY)
    recorded = invoke("plan", "--record", "--repo", POLICIES, "--audit-db", LEGACY)  # as an older version did
    assert legacy.is_file(), recorded.output
    before = legacy.read_bytes()
    new = state_home / "reconcile" / "audit.db"

    for args in (["release-hold", "prod-web"], ["apply", "--yes"], ["run"], ["plan", "--record"],
                 ["rollback", "prod-web", "--yes"]):
        refused = invoke(*args, "--repo", POLICIES)
        assert refused.exit_code == 3, (args, refused.output)  # the audit trail: nothing was done
        assert f"./{LEGACY} is an audit trail an older reconcile kept in the working directory" in refused.stderr
        assert f"the default audit trail is now {new}, which does not exist yet: nothing was done" in refused.stderr
        assert f"keep using it with --audit-db ./{LEGACY}" in refused.stderr and f"mv {LEGACY} {new}" in refused.stderr
        assert not new.exists() and not Path(f"{new}.lock").exists()
    assert legacy.read_bytes() == before

    read = invoke("audit", "runs")  # reading: said, then the new default read
    assert f"warning: ./{LEGACY} is an audit trail an older reconcile kept" in read.stderr
    assert read.exit_code == 3 and f"no audit trail at {new}" in read.stderr
    kept = invoke("audit", "runs", "--audit-db", f"./{LEGACY}")  # as the message says
    assert kept.exit_code == 0 and "\tplan\t" in kept.stdout and "warning" not in kept.stderr
    assert invoke("release-hold", "prod-web", "--repo", POLICIES, env={"RECONCILE_AUDIT_DB": LEGACY}).exit_code == 0

    shown = json.loads(invoke("config", "--format", "json").stdout)
    (audit_db,) = [s for s in shown if s["name"] == "audit_db"]
    assert audit_db["value"] == str(new) and f"--audit-db ./{LEGACY} keeps using it" in audit_db["note"]

    invoke("plan", "--record", "--repo", POLICIES, "--audit-db", str(new))  # the new default in use: the old
    assert new.is_file()                                                    # file is named, no reason to stop
    again = invoke("release-hold", "prod-web", "--repo", POLICIES)
    assert again.exit_code == 0 and f"warning: ./{LEGACY} is an audit trail" in again.stderr


# --- reconcile config ----------------------------------------------------------------------------


def config(*args: str, env: dict[str, str] | None = None) -> dict[str, dict[str, object]]:
    result = invoke(*args, env=env)
    assert result.exit_code == 0, result.output
    # the common settings by name; a command's own options as "plan --format"
    return {s["option"] if " " in (s["option"] or "") else s["name"]: s for s in json.loads(result.stdout)}


def test_config_says_where_each_setting_came_from(state_home: Path) -> None:
    shown = config("--lock", "none", "config", "--format", "json", "--ref", "v1",
                   env={"RECONCILE_REPO": "/srv/policies", "RECONCILE_REF": "main", "RECONCILE_FORMAT": "markdown",
                        "RECONCILE_AUDIT_LIMIT": "5"})
    assert (shown["repo"]["value"], shown["repo"]["source"]) == ("/srv/policies", "environment variable RECONCILE_REPO")
    assert (shown["ref"]["value"], shown["ref"]["source"]) == ("v1", "command-line option --ref")  # after the name
    assert (shown["lock"]["value"], shown["lock"]["source"]) == ("none", "command-line option --lock")  # before it
    assert (shown["audit_db"]["value"], shown["audit_db"]["source"]) == (
        str(state_home / "reconcile" / "audit.db"), "default, from XDG_STATE_HOME")
    assert shown["repo"]["library"] == "Reconciler(repo)" and shown["audit_db"]["env"] == "RECONCILE_AUDIT_DB"
    assert shown["plan --format"]["value"] == "markdown"
    assert shown["plan --format"]["source"] == "environment variable RECONCILE_FORMAT"
    assert shown["audit list --limit"]["value"] == 5 and "plan --out" not in shown  # unset: only with --all
    everything = config("config", "--format", "json", "--all")
    assert everything["plan --out"]["source"] == "default" and everything["apply --max-plan-age"]["value"] == "1h"
    assert everything["cache_dir"]["source"] == "environment variable RECONCILE_CACHE_DIR"


def test_config_never_shows_a_secret() -> None:
    env = {"RECONCILE_REPO": "https://bot:s3cr3t-token@git.example.com/policies.git", "GITHUB_TOKEN": "ghp_topsecret",
           "RECONCILE_COMMENT_API_URL": "https://x:pw-in-url@ghe.example.com/api/v3"}
    for output in ("json", "tsv", "rich"):
        result = invoke("config", "--format", output, "--all", env={**env, "COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        for secret in ("s3cr3t-token", "ghp_topsecret", "pw-in-url", "bot:"):
            assert secret not in result.output, (output, secret)
    shown = config("config", "--format", "json", env=env)
    assert shown["repo"]["value"] == "https://***@git.example.com/policies.git"
    assert shown["github_token"]["value"] == "{env: GITHUB_TOKEN}"  # a reference, never the value


def test_config_is_a_table_at_a_terminal_and_tsv_piped() -> None:
    piped = invoke("config")
    lines = piped.stdout.splitlines()
    assert lines[0] == "setting\toption\tenv\tvalue\tsource\tnote"
    assert all(line.count("\t") == 5 for line in lines)
    terminal = invoke("config", "--ref", "main", env={"FORCE_COLOR": "1", "COLUMNS": "80", "LINES": "100"})
    text = re.sub(r"\x1b\[[0-9;]*m", "", terminal.stdout)
    assert "reconcile settings (no configuration file)" in text and re.search(r"^setting +value +from", text, re.M)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "RECONCILE_AUDIT_DB" in text and "command-line option" in text
    assert invoke("config", env={"RECONCILE_CONFIG_FORMAT": "json"}).stdout.startswith("[")


# --- the README ------------------------------------------------------------------------------------


def test_the_readme_lists_every_variable() -> None:
    """The README's table is the one the command line makes (regenerate it with
    ``python -c 'from reconcile.cli.config import settings_markdown; print(settings_markdown())'``)."""
    text = (ROOT / "README.md").read_text()
    table = re.search(r"<!-- settings table: [^>]*-->\n(.*?)<!-- end of settings table -->", text, re.S)
    assert table, "README.md has no settings table"
    assert table[1] == settings_markdown()
    for _, command in commands():
        for option in options(command):
            assert f"`{option.envvar}`" in table[1]

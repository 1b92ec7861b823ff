"""docs/ (and policies/README.md) are kept true by running them.

- docs/policy-reference.md is what tests/schema_reference.py makes from schemas/: a schema field
  cannot go undocumented.
- docs/exit-codes.md's table names the code's constants, imported here: it cannot drift.
- Every fenced ``yaml`` block is validated, and every fenced shell block that runs ``reconcile``
  is run, unless it is marked as not runnable. The marker is an HTML comment on the line before
  the fence (blank lines between are allowed):

  ``<!-- example: policy, with policies/ -->``  yaml: reconcile documents, put into a copy of
      ``policies/`` (replacing the documents of the same kind and name), committed to a git
      repo-of-record made here, and ``reconcile validate`` must pass;
  ``<!-- example: alternatives of KIND/NAME PATH, with policies/ -->``  yaml: each top-level key
      is one alternative setting of the document's PATH (``spec``, ``spec.credentials``; a key
      equal to PATH's last part replaces PATH itself), validated one by one as above;
  ``<!-- example: settings of KIND/NAME PATH, with policies/ -->``  yaml: the same, every key
      set at once;
  ``<!-- example: approvals -->``  yaml: an approval file, read by the real reader;
  ``<!-- run: with policies/ -->``  shell: each ``$ `` line run by bash in a directory holding
      ``policies/`` as a git repo-of-record; the lines after it are its output (stdout and
      stderr), ``…`` standing for any text;
  ``<!-- not run: REASON -->``  shell or yaml: not runnable here, and why.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

import reconcile.cli
from reconcile.cli import cli
from reconcile.policy.approvals import read_approvals
from tests.repos import commit, init_repo, policy_repo
from tests.schema_reference import KINDS, SCHEMAS, _load, fields, reference

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted([*DOCS.glob("*.md"), ROOT / "policies" / "README.md"])
SHELLS = ("bash", "sh", "shell", "console")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
MARKER = re.compile(r"<!--\s*(example|run|not run):?\s*(.*?)\s*-->\s*\Z", re.S)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    body: str
    marker: tuple[str, str] | None  # (example | run | not run, the rest)

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = MARKER.search(before)
            found.append(Block(page, text.count("\n", 0, match.start()) + 1, match[1], match[2],
                               (marker[1], marker[2]) if marker else None))
    return found


def runs_reconcile(body: str) -> bool:
    return any(re.search(r"(^|[\s;&|(`$/])reconcile\s", line.split("#")[0])
               for line in body.splitlines())


YAML = [b for b in blocks() if b.language == "yaml"]
SHELL = [b for b in blocks() if b.language in SHELLS and runs_reconcile(b.body)]


# --- the policy reference ---------------------------------------------------------------------

def test_the_policy_reference_is_generated_from_the_schemas() -> None:
    assert (DOCS / "policy-reference.md").read_text() == reference(), (
        "docs/policy-reference.md is not what the schemas say: "
        ".venv/bin/python -m tests.schema_reference > docs/policy-reference.md")


def test_every_schema_field_is_documented() -> None:
    text = (DOCS / "policy-reference.md").read_text()
    files = {_load(f.name).get("title"): f.name for f in SCHEMAS.glob("*.schema.json")
             if "kind" in _load(f.name).get("properties", {})}
    missing = [f"{kind}: {path}" for kind in KINDS for path, _ in fields(_load(files[kind]), files[kind], "")
               if f"| `{path}` |" not in text.split(f"## {kind}\n", 1)[1].split("\n## ", 1)[0]]
    assert not missing
    assert set(files) - {"Plan"} == set(KINDS)  # a new kind's schema is in the reference too


# --- exit codes ---------------------------------------------------------------------------------

def exit_table() -> list[tuple[int, str]]:
    text = (DOCS / "exit-codes.md").read_text()
    table = text.split("<!-- exit codes:", 1)[1].split("<!-- end of exit codes -->", 1)[0]
    return [(int(m[1]), m[2]) for m in re.finditer(r"^\| (\d+) \| `?([^|`]+?)`? \|", table, re.M)]


def test_the_exit_codes_documented_are_the_codes_constants(tmp_path: Path) -> None:
    table = exit_table()
    for code, constant in table:
        if constant.startswith("reconcile.cli."):
            assert getattr(reconcile.cli, constant.removeprefix("reconcile.cli.")) == code, constant
        elif constant.startswith("click."):
            cls, attr = constant.removeprefix("click.").split(".")
            assert getattr(getattr(click, cls), attr) == code, constant
        elif constant == "CHANGES_PENDING":
            assert changes_pending_status(tmp_path) == code
        else:
            assert (code, constant) == (0, "-")
    documented = {code for code, _ in table}
    # Every exit status a click exception of the CLI carries is in the table.
    raised = {value.exit_code for value in vars(reconcile.cli).values()
              if isinstance(value, type) and issubclass(value, click.ClickException)}
    assert raised <= documented, raised - documented
    assert documented == set(range(7))
    # What the page says the CronJob does with them is what deploy/base/cronjob.yaml says.
    cronjob = next(d for d in yaml.safe_load_all((ROOT / "deploy" / "base" / "cronjob.yaml").read_text())
                   if d and d.get("kind") == "CronJob")
    rules = cronjob["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]
    fail = [r["onExitCodes"]["values"] for r in rules if r["action"] == "FailJob" and "onExitCodes" in r]
    assert fail == [[2, 3, 4, 5, 6]]
    assert "without a retry on 2, 3, 4, 5 and 6, and retries 1" in " ".join(
        (DOCS / "exit-codes.md").read_text().split())


def changes_pending_status(tmp_path: Path) -> int:
    """``plan --detailed-exitcode`` of a pull request that changes a Registry: changes to review."""
    registry = "apiVersion: reconcile/v1\nkind: Registry\nmetadata: {name: ci}\nspec: {url: 'oci-layout:%s'}\n"
    root = tmp_path / "pending"
    with init_repo(root) as repo:
        repo.git.checkout("-b", "main")
        commit(repo, {"registry.yaml": registry % (tmp_path / "a")})
        repo.git.checkout("-b", "pr")
        commit(repo, {"registry.yaml": registry % (tmp_path / "b")})
    result = CliRunner().invoke(cli, ["plan", "--repo", str(root), "--format", "json", "--detailed-exitcode",
                                      "--audit-db", str(tmp_path / "audit.db")], catch_exceptions=False)
    return result.exit_code


# --- yaml examples ------------------------------------------------------------------------------

def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def with_policies(root: Path, extra: list[dict[str, Any]]) -> dict[str, str]:
    """policies/'s files, the documents of ``extra`` replacing those of the same kind and name."""
    names = {(d.get("kind"), d["metadata"]["name"]) for d in extra}
    files = {}
    for path in sorted((ROOT / "policies").rglob("*.y*ml")):
        kept = [d for d in documents(path.read_text()) if (d.get("kind"), d["metadata"]["name"]) not in names]
        files[str(path.relative_to(ROOT / "policies"))] = yaml.safe_dump_all(kept, sort_keys=False)
    files["docs-example.yaml"] = yaml.safe_dump_all(extra, sort_keys=False)
    return files


def validate(root: Path, files: dict[str, str], *, what: str) -> None:
    policy_repo(root, files)
    result = CliRunner().invoke(cli, ["validate", "--repo", str(root)], catch_exceptions=False)
    assert result.exit_code == 0, f"{what}:\n{result.output}"


def alternatives(body: str) -> list[str]:
    """The block cut at each line that starts a top-level key."""
    chunks: list[list[str]] = []
    for line in body.splitlines():
        if re.match(r"[A-Za-z]", line) or not chunks:
            chunks.append([])
        chunks[-1].append(line)
    return ["\n".join(c) for c in chunks if yaml.safe_load("\n".join(c))]


def base_document(kind: str, name: str) -> dict[str, Any]:
    for path in sorted((ROOT / "policies").rglob("*.y*ml")):
        for d in documents(path.read_text()):
            if (d.get("kind"), d["metadata"]["name"]) == (kind, name):
                return d
    pytest.fail(f"policies/ has no {kind}/{name}")


def set_at(document: dict[str, Any], path: str, key: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = document
    for part in parents:
        node = node[part]
    if key == last:
        node[last] = value
    else:
        node.setdefault(last, {})[key] = value


@pytest.mark.parametrize("block", YAML, ids=lambda b: b.name)
def test_yaml_example(block: Block, tmp_path: Path) -> None:
    assert block.marker is not None, f"{block.name}: a yaml block needs a marker saying how it is checked"
    kind, rest = block.marker
    if kind == "not run":
        assert rest, f"{block.name}: say why it is not run"
    elif (kind, rest) == ("example", "policy, with policies/"):
        validate(tmp_path / "repo", with_policies(tmp_path, documents(block.body)), what=block.name)
    elif kind == "example" and (m := re.fullmatch(r"(alternatives|settings) of (\w+)/([\w-]+) ([\w.]+), "
                                                  r"with policies/", rest)):
        chunks = alternatives(block.body) if m[1] == "alternatives" else [block.body]
        assert chunks, block.name
        for i, chunk in enumerate(chunks):
            document = copy.deepcopy(base_document(m[2], m[3]))
            for key, value in yaml.safe_load(chunk).items():
                set_at(document, m[4], key, value)
            validate(tmp_path / f"repo-{i}", with_policies(tmp_path, [document]), what=f"{block.name}: {chunk}")
    elif (kind, rest) == ("example", "approvals"):
        root = tmp_path / "repo"
        policy_repo(root, {"approvals/example.yaml": block.body})
        sha = init_repo(root).head.commit.hexsha
        (found,) = read_approvals(str(root), sha, ["approvals/example.yaml"]).values()
        assert isinstance(found, tuple) and found, f"{block.name}: {found}"
    else:
        pytest.fail(f"{block.name}: unknown marker {block.marker}")


# --- shell examples -----------------------------------------------------------------------------

def commands(body: str) -> list[tuple[str, list[str]]]:
    """Each ``$ `` command with the output lines that follow it."""
    found: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            found.append((line[2:], []))
        elif found:
            found[-1][1].append(line)
    return found


def matches(expected: list[str], actual: list[str]) -> bool:
    return len(expected) == len(actual) and all(
        re.fullmatch(".*".join(map(re.escape, e.split("…"))), a) for e, a in zip(expected, actual, strict=True))


@pytest.mark.parametrize("block", SHELL, ids=lambda b: b.name)
def test_shell_example(block: Block, tmp_path: Path) -> None:
    assert block.marker is not None, (
        f"{block.name}: a shell example that runs reconcile is run (<!-- run: with policies/ -->) "
        "or marked <!-- not run: REASON -->")
    kind, rest = block.marker
    if kind == "not run":
        assert rest, f"{block.name}: say why it is not run"
        return
    assert (kind, rest) == ("run", "with policies/"), f"{block.name}: unknown marker {block.marker}"
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    with init_repo(tmp_path / "policies") as repo:
        repo.git.add(A=True)
        repo.index.commit("policies")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", XDG_STATE_HOME=str(tmp_path / "state"),
               XDG_CACHE_HOME=str(tmp_path / "cache"), NO_COLOR="1", COLUMNS="100")
    listed = commands(block.body)
    assert listed, f"{block.name}: no $ command"
    for command, expected in listed:
        done = subprocess.run(["bash", "-c", f"exec 2>&1; {command}"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        actual = done.stdout.rstrip("\n").splitlines()
        assert matches(expected, actual), f"{block.name}: $ {command}\nexpected:\n" + "\n".join(expected) + \
            "\ngot:\n" + done.stdout + done.stderr


def test_the_markers_are_found() -> None:
    """The examples this file checks are there: a marker that stopped matching would check nothing."""
    assert len(YAML) >= 5 and len(SHELL) >= 1
    assert {b.page.name for b in YAML} >= {"README.md", "approvals.md"}


def test_the_design_contract_names_every_command() -> None:
    """docs/design.md's command table has a row for every command of the CLI, and every audit
    subcommand, and no command the CLI does not have."""
    text = (DOCS / "design.md").read_text()
    table = text.split("## Command line", 1)[1].split("\n\n", 2)[1]
    rows = set(re.findall(r"^\| `reconcile ([a-z-]+)", table, re.M))
    assert rows == set(cli.commands)
    audit = cli.commands["audit"]
    assert isinstance(audit, click.Group)
    listed = re.search(r"`reconcile audit ([a-z|\\]+)`", table)
    assert listed and set(listed[1].replace("\\", "").split("|")) == set(audit.commands)


def test_links_stay_in_the_repository() -> None:
    """Every relative link of the READMEs and docs/ names a file of the repository: none points at a
    document outside it (a user's clone has only the repository)."""
    pages = [ROOT / "README.md", *PAGES, *(ROOT / d / "README.md" for d in ("deploy", "examples", "bench"))]
    broken = []
    for page in pages:
        text = FENCE.sub("", page.read_text())
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            if not path.exists() or not path.is_relative_to(ROOT):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken
    assert not re.search(r"DESIGN\.md|\.\./shared", "".join(p.read_text() for p in pages))

"""``reconcile quickstart``: the sandbox it builds, the walkthrough it runs, and what that leaves
behind, read back independently (index.json, skopeo, the audit trail, git, a pasted command)."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git
import pytest
from click.testing import CliRunner, Result

from reconcile.audit import AuditStore
from reconcile.cli import cli, quickstart
from reconcile.quickstart import sandbox as sandbox_module
from reconcile.quickstart.sandbox import seed_registry

PROJECT = Path(__file__).resolve().parents[1]
WIDE = {"COLUMNS": "300"}  # plan tables unfolded, so each digest is on one line
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SHA = re.compile(r"sha-[0-9a-f]{7}")

# What the seeded registry and policy must give: every prune, by the tags it removes.
PRUNED = {
    "team-a/web": {("v1.0.0",), ("sig of v1.0.0",), ("v1.1.0",), ("build-118",), ("build-119",),
                   ("build-120", "sha-*"), ("build-121",), ("build-122",)},
    "team-a/api": {("v2.3.0",), ("build-57",)},
}
REMAINING = {
    "team-a/web": {"v1.2.0", "v1.2.1", "v1.3.0", "latest", "build-123", "build-124", "build-125",
                   "build-126", "sig of v1.3.0"},
    "team-a/api": {"v2.4.0", "v2.4.1", "v2.5.0", "build-58", "build-59", "build-60", "build-61", "latest"},
}


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """One quickstart, in-process; a caller's RECONCILE_* settings must not leak into its commands."""
    directory = tmp_path_factory.mktemp("quickstart") / "sandbox"
    result = CliRunner().invoke(cli, ["quickstart", str(directory)], catch_exceptions=False,
                                env={**WIDE, "RECONCILE_REF": "no-such-ref", "RECONCILE_ONLY": "RetentionPolicy/x"})
    return directory, result


def section(output: str, command: str) -> str:
    """What the printed command ``$ … COMMAND …`` printed, up to the next command."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("$ ") and f" {command}" in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(("$ ", "# ", "Done:"))), len(lines))
    return "\n".join(lines[start + 1:end])


def printed_prunes(output: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """digest -> (repository, tags) for every prune row of the printed plan."""
    plan = section(output, "plan --repo policies").splitlines()
    found = {}
    for i, line in enumerate(plan):
        match = re.match(r"\s*prune\s+ci/(\S+)@(sha256:[0-9a-f]{64})\s", line)
        if match:
            tags = re.search(r"\(tags: ([^)]*)\)", plan[i + 1])
            assert tags or "platform manifest" in " ".join(plan[i:i + 4]), plan[i + 1]  # an untagged dependant
            found[match[2]] = (match[1], tuple(tags[1].split(", ")) if tags else ())
    return found


def layout_tags(directory: Path, repository: str) -> dict[str, str]:
    """tag -> digest, straight from the layout's index.json."""
    index = json.loads((directory / "registries" / "ci" / repository / "index.json").read_text())
    return {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]
            if "org.opencontainers.image.ref.name" in m.get("annotations", {})}


def named(tags: tuple[str, ...] | set[str], signed: dict[str, str]) -> set[str] | tuple[str, ...]:
    """Tags with sha-<commit> as sha-* and sha256-<hex>.sig as 'sig of TAG' (TAG: the signed image's tag)."""
    def name(tag: str) -> str:
        if tag.endswith(".sig"):
            return f"sig of {signed[tag]}"
        return SHA.sub("sha-*", tag)
    return tuple(map(name, tags)) if isinstance(tags, tuple) else set(map(name, tags))


def releases(plan: dict[str, Any]) -> dict[str, str]:
    """cosign signature tag -> the release tag it signs, for every release the plan saw."""
    found = {}
    for action in plan["actions"]:
        if not action["policy"].startswith("RetentionPolicy/"):
            continue
        tags = action["tags"] or [action["target"].rsplit(":", 1)[1]]
        for tag in tags:
            if re.fullmatch(r"v\d+\.\d+\.\d+", tag):
                found[f"sha256-{action['digestBefore'].removeprefix('sha256:')}.sig"] = tag
    return found


def skopeo_digest(directory: Path, repository: str, tag: str, registry: str = "ci") -> str | None:
    """sha256 of the manifest skopeo reads for the tag (independently of reconcile), or None."""
    layout = directory / "registries" / registry / repository
    run = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{layout}:{tag}"], capture_output=True, timeout=60)
    return "sha256:" + hashlib.sha256(run.stdout).hexdigest() if run.returncode == 0 else None


def manifests_git(directory: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(directory / "manifests.git"), *args], check=True, capture_output=True,
                          text=True, timeout=60).stdout


def pinned(directory: Path, env: str = "prod", revision: str = "main") -> dict[str, str]:
    """repository -> the digest an environment's manifests pin it to, at a revision of the manifests repository."""
    found = {}
    for name in manifests_git(directory, "ls-tree", "--name-only", revision, f"envs/{env}/").split():
        text = manifests_git(directory, "show", f"{revision}:{name}")
        for repository in ("team-a/web", "team-a/api"):
            if match := re.search(rf"{repository}:[\w.-]+@(sha256:[0-9a-f]{{64}})", text):
                found[repository] = match[1]
            if repository in text and (match := re.search(r"digest: (sha256:[0-9a-f]{64})", text)):
                found[repository] = match[1]
    return found


def first_commit(directory: Path) -> str:
    return manifests_git(directory, "rev-list", "--max-parents=0", "main").strip()


# --- the walkthrough -------------------------------------------------------------------------------

def test_it_runs_each_step_printed_as_typed_and_exits_0(walkthrough: tuple[Path, Result]) -> None:
    directory, result = walkthrough
    assert result.exit_code == 0, result.output
    commands = [line.split(" ", 2)[2] for line in result.output.splitlines() if line.startswith("$ ")
                and "reconcile" in line.split(" ", 2)[1]]
    assert commands == ["validate --repo policies",
                        "plan --repo policies --audit-db audit.db --out plan.json",
                        "apply --repo policies --audit-db audit.db --yes",
                        "apply --repo policies --audit-db audit.db --yes",
                        "apply --repo policies --audit-db audit.db --yes",
                        "rollback prod-web --repo policies --audit-db audit.db --yes",
                        "plan --repo policies --audit-db audit.db",
                        "audit list --audit-db audit.db",
                        "audit verify --audit-db audit.db"]
    assert f'$ cd {directory} && export RECONCILE_CACHE_DIR="$PWD/cache"' in result.output
    head = git.Repo(directory / "policies").head.commit.hexsha
    assert ("valid: 8 documents (3 Registry, 1 Cluster, 1 RetentionPolicy, 1 PromotionPolicy, 2 DeployPolicy) "
            f"at commit {head[:12]}") in result.output
    assert "$ git -C manifests.git log --oneline" in result.output
    assert [line for line in result.output.splitlines() if line.startswith("applied ")] == [
        "applied 16 of 16 changes", "applied 2 of 2 changes", "applied 1 of 1 changes"]
    assert re.search(r"^ok: \d+ entries, head [0-9a-f]{64}$", section(result.output, "audit verify"), re.M)
    assert f"Done: validate, plan, apply (three runs: retention, promotion and deploy), rollback and audit ran in " \
           f"{directory}/." in result.output


def test_the_plan_prunes_exactly_what_no_rule_keeps_and_keeps_what_prod_runs(
        walkthrough: tuple[Path, Result]) -> None:
    directory, result = walkthrough
    saved = json.loads((directory / "plan.json").read_text())
    printed = printed_prunes(result.output)
    prunes = [a for a in saved["actions"] if a["kind"] == "prune"]
    assert {a["digestBefore"] for a in prunes} == set(printed)  # the printed plan is the plan
    (untag,) = [a for a in saved["actions"] if a["kind"] == "untag"]  # a sha- tag on the kept build-126
    assert SHA.search(untag["target"])
    assert untag["reason"] == "no rule keeps it; its digest stays: tagged build-126, which is kept"
    assert {a["kind"] for a in saved["actions"] if a["mutates"]} == {"prune", "untag", "promote"}
    signed = releases(saved)
    for repository, expected in PRUNED.items():
        assert {named(tags, signed) for repo, tags in printed.values() if repo == repository and tags} == expected
    platforms = [a for a in prunes if a.get("dependsOn") and "platform manifest" in a["reason"]]
    assert len(platforms) == 4 and all(not a["tags"] for a in platforms)  # two pruned indexes, two platforms each

    running = pinned(directory, revision=first_commit(directory))  # what prod ran when the plan was made
    assert len(running) == 2
    (kept,) = [a for a in saved["actions"] if a["digestBefore"] == running["team-a/api"]]
    assert kept["target"] == "ci/team-a/api:build-58", kept  # running in prod, kept by no rule: protected
    assert kept["kind"] == "keep" and kept["reason"].startswith("protected:"), kept
    assert re.search(rf"keep\s+{re.escape(kept['target'])}\s+protected:", result.output)
    (web,) = [a for a in saved["actions"] if a["digestBefore"] == running["team-a/web"] and a["kind"] == "keep"
              and a["policy"] == "RetentionPolicy/ci-cleanup"]
    assert web["target"] == "ci/team-a/web:build-124" and not web["reason"].startswith("protected:"), web


def test_the_registry_lost_the_pruned_tags_and_kept_the_rest(walkthrough: tuple[Path, Result]) -> None:
    directory, _ = walkthrough
    saved = json.loads((directory / "plan.json").read_text())
    kept = {a["target"].split("/", 1)[1]: a["digestBefore"] for a in saved["actions"] if a["kind"] == "keep"}
    signed = releases(saved)
    for repository in ("team-a/web", "team-a/api"):
        tags = layout_tags(directory, repository)
        assert named(set(tags), signed) == REMAINING[repository]
        assert all(kept[f"{repository}:{tag}"] == digest for tag, digest in tags.items())
    api = pinned(directory)["team-a/api"]
    assert skopeo_digest(directory, "team-a/api", "build-58") == api  # the protected build, as skopeo reads it
    assert skopeo_digest(directory, "team-a/web", "v1.3.0") == kept["team-a/web:v1.3.0"]
    for gone in ("v1.0.0", "build-120", "build-121", "build-122"):
        assert skopeo_digest(directory, "team-a/web", gone) is None
    assert skopeo_digest(directory, "team-a/api", "build-57") is None


def test_the_images_are_real_oci_images(walkthrough: tuple[Path, Result]) -> None:
    directory, _ = walkthrough
    layout = directory / "registries/ci/team-a/web"
    for arch in ("amd64", "arm64"):  # v1.3.0 is a multi-arch index
        seen = json.loads(subprocess.run(["skopeo", "inspect", "--override-arch", arch, f"oci:{layout}:v1.3.0"],
                                         capture_output=True, text=True, check=True, timeout=60).stdout)
        assert (seen["Architecture"], seen["Os"]) == (arch, "linux")
        assert seen["Labels"]["org.opencontainers.image.version"] == "1.3.0"
        assert re.fullmatch(r"[0-9a-f]{40}", seen["Labels"]["org.opencontainers.image.revision"])
        assert len(seen["Layers"]) == 2
    build = json.loads(subprocess.run(["skopeo", "inspect", f"oci:{layout}:build-123"], capture_output=True,
                                      text=True, check=True, timeout=60).stdout)
    age = datetime.now(UTC) - datetime.fromisoformat(build["Created"].replace("Z", "+00:00"))
    assert 4.9 < age.total_seconds() / 86400 < 5.1  # built five days ago: kept for its age, not its rank
    # skopeo copies every platform, verifying each blob against its digest.
    subprocess.run(["skopeo", "copy", "-q", "--all", f"oci:{layout}:latest", f"dir:{directory.parent / 'copy'}"],
                   check=True, capture_output=True, timeout=60)


def test_the_trail_verifies_and_the_sandbox_has_converged(walkthrough: tuple[Path, Result]) -> None:
    """The printed commands, pasted into a shell in DIR, work: planning again finds nothing to do."""
    directory, result = walkthrough
    with AuditStore.open(directory / "audit.db", read_only=True) as store:
        assert store.verify().ok
        runs = store.runs()
        # The first apply pruned and promoted to staging; prod waited on its gates: a blocked run.
        assert [(run.mode, run.outcome) for run in runs] == [("rollback", "succeeded")] + [
            ("apply", "succeeded")] * 2 + [("apply", "blocked")]
    plan_line = next(line for line in result.output.splitlines() if line.startswith("$ ") and " plan " in line)
    pasted = plan_line.removeprefix("$ ").replace(" --out plan.json", "") + " --detailed-exitcode"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_")} | {
        "RECONCILE_CACHE_DIR": str(directory / "cache")}
    again = subprocess.run(["bash", "-c", pasted], cwd=directory, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "no changes" in again.stdout


def test_the_next_steps_name_the_apply_run(walkthrough: tuple[Path, Result]) -> None:
    directory, result = walkthrough
    head = result.output[result.output.index("Done:"):]
    with AuditStore.open(directory / "audit.db", read_only=True) as store:
        run_id = store.runs()[-1].id  # the first one: its prunes
    assert f"audit show {run_id} --audit-db audit.db" in head
    assert "--detailed-exitcode" in head and "git -C policies commit" in head and "validate --repo policies" in head


# --- the pipeline ----------------------------------------------------------------------------------

def test_the_newest_build_is_promoted_by_digest_to_staging_and_prod(walkthrough: tuple[Path, Result]) -> None:
    directory, _ = walkthrough
    build = skopeo_digest(directory, "team-a/web", "build-126")
    assert build is not None
    for registry, tags, before in (("staging", ("staging", "126"), "125"), ("prod", ("prod", "126"), "124")):
        for tag in tags:
            assert skopeo_digest(directory, "team-a/web", tag, registry=registry) == build, (registry, tag)
        # what the stage got before stays, under its version tag: what a rollback goes back to
        assert skopeo_digest(directory, "team-a/web", before, registry=registry) == skopeo_digest(
            directory, "team-a/web", f"build-{before}")
    assert not (directory / "registries/staging/team-a/api").exists()


def test_each_stage_is_deployed_by_one_write_back_commit_and_prod_rolled_back_by_another(
        walkthrough: tuple[Path, Result]) -> None:
    directory, result = walkthrough
    build = skopeo_digest(directory, "team-a/web", "build-126")
    earlier = {env: skopeo_digest(directory, "team-a/web", tag) for env, tag in (("staging", "build-125"),
                                                                                 ("prod", "build-124"))}
    log = manifests_git(directory, "log", "--format=%H %s", "main").splitlines()
    assert len(log) == 4
    seed = first_commit(directory)
    assert log[-1].split()[0] == seed
    subjects = [line.split(" ", 1)[1] for line in log[:3]]
    assert subjects == [f"reconcile: rollback DeployPolicy/prod-web {build} -> {earlier['prod']}",
                        f"reconcile: deploy DeployPolicy/prod-web {earlier['prod']} -> {build}",
                        f"reconcile: deploy DeployPolicy/staging-web {earlier['staging']} -> {build}"]
    assert section(result.output, "-C manifests.git log").splitlines()[0].endswith(f"-> {earlier['prod']}")
    commits = [line.split()[0] for line in log[:3]]
    for commit, env, old, new in ((commits[0], "prod", f"126@{build}", f"124@{earlier['prod']}"),
                                  (commits[1], "prod", f"124@{earlier['prod']}", f"126@{build}"),
                                  (commits[2], "staging", f"125@{earlier['staging']}", f"126@{build}")):
        diff = manifests_git(directory, "diff", "--unified=0", f"{commit}~1", commit)
        changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        assert changed == [f"-          image: team-a/web:{old}", f"+          image: team-a/web:{new}"], diff
        assert f"envs/{env}/web.yaml" in diff
    assert pinned(directory, "staging") == {"team-a/web": build}
    assert pinned(directory) == pinned(directory, revision=seed)  # prod is back where it was


def test_the_rollback_holds_and_the_printed_release_rolls_prod_forward_again(tmp_path: Path) -> None:
    """The plan after the rollback says it is held; the next steps' release-hold line, pasted into a
    shell, deploys build-126 to prod again. On a sandbox of its own: it changes the manifests."""
    directory = tmp_path / "sandbox"
    result = CliRunner().invoke(cli, ["quickstart", str(directory)], catch_exceptions=False, env=WIDE)
    assert result.exit_code == 0, result.output
    build = skopeo_digest(directory, "team-a/web", "build-126")
    held = result.output[result.output.index("# The next scheduled run respects the hold"):]
    assert "no changes" in held and f"held: {build[:19]} was rolled back by hand" in held
    head = result.output[result.output.index("Done:"):]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_")} | {
        "RECONCILE_CACHE_DIR": str(directory / "cache")}
    explain = next(line.strip() for line in head.splitlines() if " explain DeployPolicy/prod-web " in line)
    explained = subprocess.run(["bash", "-c", explain], cwd=directory, env=env, capture_output=True, text=True,
                               timeout=120)
    assert explained.returncode == 0, explained.stdout + explained.stderr
    assert f"(tags: 126): blocked — DeployPolicy/prod-web: held: {build[:19]} was rolled back by hand" in \
        explained.stdout
    release = next(line.strip() for line in head.splitlines() if " release-hold prod-web " in line)
    done = subprocess.run(["bash", "-c", release], cwd=directory, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"released the hold on {build} for prod-web" in done.stderr
    assert pinned(directory)["team-a/web"] == build
    assert manifests_git(directory, "log", "-1", "--format=%s", "main").strip().endswith(f"-> {build}")


# --- the directory ---------------------------------------------------------------------------------

def test_an_existing_sandbox_is_rebuilt_only_with_force(walkthrough: tuple[Path, Result]) -> None:
    directory, _ = walkthrough
    before = (directory / "audit.db").stat().st_mtime_ns
    again = CliRunner().invoke(cli, ["quickstart", str(directory)])
    assert again.exit_code == 1
    assert f"{directory} already holds a quickstart sandbox; rebuild it with --force" in again.output
    assert (directory / "audit.db").stat().st_mtime_ns == before


@pytest.mark.parametrize("force", [False, True])
def test_a_directory_that_is_not_a_sandbox_is_never_touched(tmp_path: Path, force: bool) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["quickstart", str(tmp_path), *(["--force"] if force else [])])
    assert result.exit_code == 1
    assert "is not empty and is not a quickstart sandbox; nothing was changed there" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_the_seeded_content_is_deterministic(tmp_path: Path) -> None:
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    first, second = seed_registry(tmp_path / "a", now), seed_registry(tmp_path / "b", now)
    assert first == second
    assert (tmp_path / "a/team-a/web/index.json").read_bytes() == (tmp_path / "b/team-a/web/index.json").read_bytes()
    assert len({image.digest for image in first}) == len(first)  # no two seeds collide


def run_on_terminal(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """Run ``args`` with stdin, stdout and stderr on a pseudo-terminal; (exit status, output)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(args, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    return process.wait(timeout=10), b"".join(chunks).decode(errors="replace")


def test_force_rebuilds_as_a_real_process_on_a_terminal(walkthrough: tuple[Path, Result], tmp_path: Path) -> None:
    """`python -m reconcile quickstart --force DIR` on a terminal: the sandbox is built afresh and the
    commands write to the terminal themselves (audit list as a table, not TSV)."""
    directory, first = walkthrough
    copy = tmp_path / "sandbox"
    shutil.copytree(directory, copy, symlinks=True)
    (copy / "leftover.txt").write_text("from an earlier session")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_")} | {
        **WIDE, "LINES": "5000", "NO_COLOR": "1", "TERM": "xterm"}
    status, output = run_on_terminal([sys.executable, "-m", "reconcile", "quickstart", "--force", str(copy)],
                                     tmp_path, env)
    output = ANSI.sub("", output).replace("\r\n", "\n")
    assert status == 0, output
    assert not (copy / "leftover.txt").exists()
    assert "applied 16 of 16 changes" in output and "applied 1 of 1 changes" in output
    assert "\t" not in section(output, "audit list") and "seq\ttimestamp" not in output
    assert f'"oci-layout:{copy / "registries" / "ci"}"' in (copy / "policies/registries.yaml").read_text()
    with AuditStore.open(copy / "audit.db", read_only=True) as store:
        runs = store.runs()
    assert len(runs) == 4 and not any(run.id in first.output for run in runs)  # a new trail, not the copied one


# --- failures name their step ----------------------------------------------------------------------

def test_a_failing_step_is_named_and_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quickstart, "steps", lambda: [
        quickstart.Step("Check.", ("validate", "--repo", "policies")),
        quickstart.Step("Check another.", ("validate", "--repo", "no-such-policies")),
        quickstart.Step("Never run.", ("audit", "verify", "--audit-db", "audit.db"))])
    result = CliRunner().invoke(cli, ["quickstart", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert "repo-of-record 'no-such-policies' does not exist" in result.output
    assert "quickstart step 2 of 3 failed: `reconcile validate --repo no-such-policies` exited 1" in result.output
    assert "audit verify" not in result.output


def test_a_sandbox_that_cannot_be_built_says_where_it_stopped(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(directory: Path, now: datetime) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sandbox_module, "seed_registry", broken)
    result = CliRunner().invoke(cli, ["quickstart", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert "quickstart failed while seeding the ci registry: [Errno 28] No space left on device; the sandbox is " \
           "incomplete (rebuild it with --force)" in result.output
    assert CliRunner().invoke(cli, ["quickstart", str(tmp_path / "s")]).exit_code == 1  # refused: a sandbox

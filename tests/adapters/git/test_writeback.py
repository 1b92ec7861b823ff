"""GitOps write-back against real git repositories: a bare "remote" made by the fixture, pushed
to through the working clone write_back keeps in its cache. No mocks: concurrency is a real
second clone pushing from a git hook at the worst moment."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from reconcile.adapters.git.writeback import (
    WriteBackError,
    plan_edit,
    review_branch,
    working_clone_dir,
    write_back,
)
from reconcile.policy.model import ManifestsTarget, Workload

REPO = "registry.example.com:5000/shop/web"
OLD = "sha256:" + "0123456789abcdef" * 4
NEW = "sha256:" + "c0ffee00" * 8
NEWER = "sha256:" + "beef" * 16
IMAGE = f"{REPO}:v1.3.0@{NEW}"
MESSAGE = "Deploy prod-web: web v1.2.0 -> v1.3.0\n\nfrom sha256:0123... to sha256:c0ffee...\nrepo-of-record: abc123"
AUTHOR = ("reconcile-bot", "reconcile@example.com")

WEB = Workload("Deployment", "web", "web")
MIGRATE = Workload("Deployment", "web", "migrate")
REINDEX = Workload("CronJob", "reindex", "reindex")

PROD = f"""\
# Web frontend, owned by team-a. reconcile writes the image lines; everything else is ours.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop      # the prod namespace
  labels: {{app: web, tier: "frontend"}}
spec:
  replicas: 3
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
      annotations:
        note: 'image: {REPO}:v1.2.0'   # not an image field
    spec:
      initContainers:
      -   name: migrate
          image:   "{REPO}:v1.2.0@{OLD}"   # runs the migrations first
          args: ["migrate", "--yes"]
      containers:
         - name: web
           image: {REPO}:v1.2.0@{OLD}  # the app
           ports:
             - containerPort: 8080
         - name: envoy
           image: 'envoyproxy/envoy:v1.30.1'
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: shop}}
spec:
  ports: [{{port: 80, targetPort: 8080}}]
---
# hourly reindex
apiVersion: batch/v1
kind: CronJob
metadata: {{name: reindex, namespace: shop}}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{{name: reindex, image: '{REPO}:v1.2.0', args: [reindex]}}]
"""

BASE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          image: web   # set by each overlay's kustomization
"""

STAGING = f"""\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: shop-staging
resources:
  - ../../base
images:
  # the app: reconcile keeps it pinned by digest
  - name: web
    newName: {REPO}
    newTag: "v1.2.0"
    digest: {OLD}   # set by reconcile
  - name: envoyproxy/envoy
    newTag: v1.30.1
"""

DEV = """\
resources: [../../base]
images:
- name: web
  newTag: v1.2.0   # a tag only: not pinned yet
"""

QA = f"""\
resources: [../../base]
images: [{{name: web, newName: {REPO}, newTag: v1.2.0}}]
"""

FILES = {
    "README.md": "GitOps manifests of the shop.\n",
    "envs/prod/web.yaml": PROD,
    "base/deployment.yaml": BASE,
    "base/kustomization.yaml": "resources: [deployment.yaml]\n",
    "envs/staging/kustomization.yaml": STAGING,
    "envs/dev/kustomization.yml": DEV,
    "envs/qa/kustomization.yaml": QA,
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def commit_all(work: Path, message: str) -> str:
    git(work, "add", "--all")
    git(work, "commit", "--quiet", "-m", message)
    return git(work, "rev-parse", "HEAD")


@pytest.fixture(autouse=True)
def hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git configuration (hooks paths, signing...); the fixture's own identity."""
    (tmp_path / "gitconfig").write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "fixture")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "fixture@example.com")


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repository with the manifests on ``main``, as a forge would hold it."""
    work = tmp_path / "seed"
    work.mkdir()
    git(work, "init", "--quiet", "--initial-branch", "main")
    write(work, FILES)
    commit_all(work, "manifests")
    git(tmp_path, "clone", "--quiet", "--bare", str(work), str(tmp_path / "remote.git"))
    return tmp_path / "remote.git"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def tip(repository: Path, branch: str = "main") -> str:
    return git(repository, "rev-parse", f"refs/heads/{branch}")


def show(repository: Path, revision: str, path: str) -> str:
    return subprocess.run(["git", "show", f"{revision}:{path}"], cwd=repository, check=True,
                          capture_output=True, text=True).stdout


def diff(repository: Path, commit: str) -> str:
    """The commit's changes, without blob ids or hunk-header context: only what changed."""
    text = git(repository, "diff", "--no-color", "-U0", f"{commit}~1", commit)
    lines = []
    for line in text.splitlines():
        if line.startswith("index "):
            continue
        lines.append(line[: line.index(" @@") + 3] if line.startswith("@@") else line)
    return "\n".join(lines)


def target(remote: Path | str, path: str = "envs/prod", **options: object) -> ManifestsTarget:
    return ManifestsTarget(str(remote), path, **options)  # type: ignore[arg-type]


# --- workload image lines -----------------------------------------------------------------------


def test_only_the_image_lines_change_in_one_commit_pushed_to_the_branch(remote: Path, cache: Path) -> None:
    before = tip(remote)
    result = write_back(target(remote), [WEB, MIGRATE, REINDEX], IMAGE, message=MESSAGE, cache_dir=cache,
                        author=AUTHOR, namespace="shop")
    assert result.changed and result.branch == "main" and result.files == ("envs/prod/web.yaml",)
    assert result.commit == tip(remote)
    assert result.before == (f"{REPO}:v1.2.0@{OLD}", f"{REPO}:v1.2.0@{OLD}", f"{REPO}:v1.2.0")
    assert git(remote, "rev-parse", f"{result.commit}~1") == before
    assert git(remote, "log", "-1", "--format=%an <%ae>|%cn <%ce>", result.commit) == (
        "reconcile-bot <reconcile@example.com>|reconcile-bot <reconcile@example.com>")
    assert git(remote, "log", "-1", "--format=%B", result.commit) == MESSAGE
    assert diff(remote, result.commit) == f"""\
diff --git a/envs/prod/web.yaml b/envs/prod/web.yaml
--- a/envs/prod/web.yaml
+++ b/envs/prod/web.yaml
@@ -20 +20 @@
-          image:   "{REPO}:v1.2.0@{OLD}"   # runs the migrations first
+          image:   "{IMAGE}"   # runs the migrations first
@@ -24 +24 @@
-           image: {REPO}:v1.2.0@{OLD}  # the app
+           image: {IMAGE}  # the app
@@ -47 +47 @@
-          containers: [{{name: reindex, image: '{REPO}:v1.2.0', args: [reindex]}}]
+          containers: [{{name: reindex, image: '{IMAGE}', args: [reindex]}}]"""
    assert show(remote, "main", "envs/prod/web.yaml") == PROD.replace(
        f'"{REPO}:v1.2.0@{OLD}"', f'"{IMAGE}"').replace(
        f"image: {REPO}:v1.2.0@{OLD}", f"image: {IMAGE}").replace(f"image: '{REPO}:v1.2.0'", f"image: '{IMAGE}'")


def test_running_again_makes_no_new_commit(remote: Path, cache: Path) -> None:
    first = write_back(target(remote), [WEB, REINDEX], IMAGE, message=MESSAGE, cache_dir=cache)
    again = write_back(target(remote), [WEB, REINDEX], IMAGE, message=MESSAGE, cache_dir=cache)
    assert first.changed
    assert (again.changed, again.commit, again.branch, again.files) == (False, None, "main", ())
    assert again.before == (IMAGE, IMAGE)
    assert tip(remote) == first.commit
    assert len(list(cache.glob("*.worktree"))) == 1  # one clone, fetched again


def test_a_digest_only_image_is_written_as_given(remote: Path, cache: Path) -> None:
    result = write_back(target(remote), [WEB], f"{REPO}@{NEW}", message=MESSAGE, cache_dir=cache)
    assert diff(remote, result.commit or "") == f"""\
diff --git a/envs/prod/web.yaml b/envs/prod/web.yaml
--- a/envs/prod/web.yaml
+++ b/envs/prod/web.yaml
@@ -24 +24 @@
-           image: {REPO}:v1.2.0@{OLD}  # the app
+           image: {REPO}@{NEW}  # the app"""


def test_an_image_without_a_digest_is_refused(remote: Path, cache: Path) -> None:
    with pytest.raises(WriteBackError, match="has no digest; write-back pins images by digest"):
        write_back(target(remote), [WEB], f"{REPO}:v1.3.0", message=MESSAGE, cache_dir=cache)
    with pytest.raises(WriteBackError, match="invalid image reference"):
        write_back(target(remote), [WEB], "Not/An/Image@sha256:xyz", message=MESSAGE, cache_dir=cache)


# --- kustomizations -----------------------------------------------------------------------------


def test_a_kustomization_images_entry_wins_over_the_workload_line(remote: Path, cache: Path) -> None:
    """The overlay's entry is what kustomize renders; the base it patches (outside the path) is untouched."""
    result = write_back(target(remote, "envs/staging"), [WEB], IMAGE, message=MESSAGE, cache_dir=cache,
                        namespace="shop-staging")
    assert result.files == ("envs/staging/kustomization.yaml",)
    assert result.before == (f"{REPO}:v1.2.0@{OLD}",)
    assert diff(remote, result.commit or "") == f"""\
diff --git a/envs/staging/kustomization.yaml b/envs/staging/kustomization.yaml
--- a/envs/staging/kustomization.yaml
+++ b/envs/staging/kustomization.yaml
@@ -10,2 +10,2 @@
-    newTag: "v1.2.0"
-    digest: {OLD}   # set by reconcile
+    newTag: "v1.3.0"
+    digest: {NEW}   # set by reconcile"""


def test_a_kustomization_gets_the_fields_it_lacks_and_a_digest_only_image_drops_the_tag(
        remote: Path, cache: Path) -> None:
    tagged = write_back(target(remote, "envs/dev"), [WEB], IMAGE, message=MESSAGE, cache_dir=cache)
    assert tagged.before == ("web:v1.2.0",)
    assert show(remote, "main", "envs/dev/kustomization.yml") == f"""\
resources: [../../base]
images:
- name: web
  newName: {REPO}
  newTag: v1.3.0   # a tag only: not pinned yet
  digest: {NEW}
"""
    pinned = write_back(target(remote, "envs/dev"), [WEB], f"{REPO}@{NEWER}", message=MESSAGE, cache_dir=cache)
    assert pinned.before == (IMAGE,)
    assert diff(remote, pinned.commit or "") == f"""\
diff --git a/envs/dev/kustomization.yml b/envs/dev/kustomization.yml
--- a/envs/dev/kustomization.yml
+++ b/envs/dev/kustomization.yml
@@ -5,2 +5 @@
-  newTag: v1.3.0   # a tag only: not pinned yet
-  digest: {NEW}
+  digest: {NEWER}"""


def test_a_flow_style_kustomization_stays_flow_style(remote: Path, cache: Path) -> None:
    write_back(target(remote, "envs/qa"), [WEB], IMAGE, message=MESSAGE, cache_dir=cache)
    assert show(remote, "main", "envs/qa/kustomization.yaml") == (
        f"resources: [../../base]\nimages: [{{name: web, newName: {REPO}, newTag: v1.3.0, digest: {NEW}}}]\n")
    write_back(target(remote, "envs/qa"), [WEB], f"{REPO}@{NEWER}", message=MESSAGE, cache_dir=cache)
    assert show(remote, "main", "envs/qa/kustomization.yaml") == (
        f"resources: [../../base]\nimages: [{{name: web, newName: {REPO}, digest: {NEWER}}}]\n")


# --- pull-request mode --------------------------------------------------------------------------


def test_pull_request_mode_pushes_a_review_branch_and_leaves_the_target_branch_alone(
        remote: Path, cache: Path) -> None:
    main = tip(remote)
    result = write_back(target(remote, pull_request=True), [WEB], IMAGE, message=MESSAGE, cache_dir=cache,
                        policy="prod-web")
    assert result.changed and result.branch == "reconcile/prod-web-c0ffee00c0ff" == review_branch(IMAGE, "prod-web")
    assert tip(remote) == main
    assert tip(remote, result.branch) == result.commit
    assert git(remote, "rev-parse", f"{result.commit}~1") == main
    assert "+           image: " + IMAGE + "  # the app" in diff(remote, result.commit or "")
    # the next run finds it proposed already: no second commit, no second branch
    again = write_back(target(remote, pull_request=True), [WEB], IMAGE, message=MESSAGE, cache_dir=cache,
                       policy="prod-web")
    assert (again.changed, again.branch, again.commit) == (False, result.branch, None)
    assert tip(remote, result.branch) == result.commit
    assert git(remote, "for-each-ref", "--format=%(refname)") == (
        f"refs/heads/main\nrefs/heads/{result.branch}")
    # once merged, the target branch itself is at the image
    git(remote, "update-ref", "refs/heads/main", result.commit or "")
    merged = write_back(target(remote, pull_request=True), [WEB], IMAGE, message=MESSAGE, cache_dir=cache)
    assert (merged.changed, merged.branch) == (False, "main")


def test_review_branch_names() -> None:
    assert review_branch(f"{REPO}@{NEW}") == "reconcile/web-c0ffee00c0ff"
    assert review_branch(IMAGE, "Prod Web/EU..x") == "reconcile/prod-web-eu.x-c0ffee00c0ff"


# --- the remote moving --------------------------------------------------------------------------


def install_concurrent_pusher(tmp_path: Path, remote: Path, cache: Path, *, times: int) -> Path:
    """A post-commit hook in write_back's own clone: between its commit and its push, someone else
    pushes a commit to main (at most ``times`` times)."""
    other = tmp_path / "colleague"
    git(tmp_path, "clone", "--quiet", str(remote), str(other))
    clone = working_clone_dir(str(remote), cache)
    git(tmp_path, "clone", "--quiet", "--no-checkout", str(remote), str(clone))  # write_back reuses it
    hook = clone / ".git" / "hooks" / "post-commit"
    hook.write_text(f"""#!/bin/sh
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_PREFIX
count=$(cat "{tmp_path}/pushes" 2>/dev/null || echo 0)
[ "$count" -ge {times} ] && exit 0
echo $((count + 1)) > "{tmp_path}/pushes"
cd "{other}" && git pull --quiet --ff-only origin main
sed -i "s/^# hourly reindex$/# hourly reindex (colleague $count)/" envs/prod/web.yaml
echo "change $count" >> README.md
git commit --quiet -am "colleague's change $count" && git push --quiet origin HEAD:main
""")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    return other


def test_a_push_rejected_because_main_moved_is_redone_on_the_new_tip(
        tmp_path: Path, remote: Path, cache: Path) -> None:
    install_concurrent_pusher(tmp_path, remote, cache, times=1)
    result = write_back(target(remote), [WEB], IMAGE, message=MESSAGE, cache_dir=cache)
    assert (tmp_path / "pushes").read_text().strip() == "1"
    assert result.changed and result.commit == tip(remote)
    parent = git(remote, "rev-parse", f"{result.commit}~1")
    assert git(remote, "log", "-1", "--format=%s", parent) == "colleague's change 0"
    assert diff(remote, result.commit or "") == f"""\
diff --git a/envs/prod/web.yaml b/envs/prod/web.yaml
--- a/envs/prod/web.yaml
+++ b/envs/prod/web.yaml
@@ -24 +24 @@
-           image: {REPO}:v1.2.0@{OLD}  # the app
+           image: {IMAGE}  # the app"""
    assert "# hourly reindex (colleague 0)\n" in show(remote, "main", "envs/prod/web.yaml")


def test_a_remote_that_keeps_moving_fails_clearly_and_nothing_is_pushed(
        tmp_path: Path, remote: Path, cache: Path) -> None:
    install_concurrent_pusher(tmp_path, remote, cache, times=2)
    with pytest.raises(WriteBackError, match=r"cannot push branch 'main' to .*remote\.git: .*rejected.*"
                                             r"the branch moved again after a retry on its new tip"):
        write_back(target(remote), [WEB], IMAGE, message=MESSAGE, cache_dir=cache)
    assert git(remote, "log", "-1", "--format=%s", "main") == "colleague's change 1"
    assert IMAGE not in show(remote, "main", "envs/prod/web.yaml")


def test_what_a_failed_run_leaves_in_the_clone_is_discarded(remote: Path, cache: Path) -> None:
    write_back(target(remote), [REINDEX], IMAGE, message=MESSAGE, cache_dir=cache)
    clone = working_clone_dir(str(remote), cache)
    (clone / "envs/prod/web.yaml").write_text("garbage: [\n")
    (clone / "envs/prod/stray.yaml").write_text("kind: Deployment\nmetadata: {name: web}\n")
    git(clone, "commit", "--quiet", "-am", "a local commit that never got pushed")
    result = write_back(target(remote), [WEB], IMAGE, message=MESSAGE, cache_dir=cache)
    assert diff(remote, result.commit or "").endswith(f"+           image: {IMAGE}  # the app")
    assert git(remote, "ls-tree", "-r", "--name-only", "main", "envs/prod") == "envs/prod/web.yaml"


# --- refusals: nothing committed ----------------------------------------------------------------


@pytest.mark.parametrize(("workload", "namespace", "message"), [
    (Workload("Deployment", "api", "api"), None, "Deployment 'api' not found in any YAML file under envs/prod"),
    (Workload("StatefulSet", "web", "web"), None, "StatefulSet 'web' not found"),
    (WEB, "other", "Deployment 'web' in namespace 'other' is only in base/deployment.yaml, outside envs/prod, and "
                   "no kustomization under envs/prod has an images entry for 'web'"),
    (REINDEX, "other", "CronJob 'reindex' in namespace 'other' not found in any YAML file under envs/prod"),
    (Workload("Deployment", "web", "api"), None,
     "envs/prod/web.yaml:2: Deployment 'web' has no container 'api' \\(it has: web, envoy, migrate\\)"),
    (Workload("CronJob", "reindex", "web"), None,
     "envs/prod/web.yaml:37: CronJob 'reindex' has no container 'web' \\(it has: reindex\\)"),
])
def test_a_missing_workload_or_container_is_an_error_naming_it(
        remote: Path, cache: Path, workload: Workload, namespace: str | None, message: str) -> None:
    main = tip(remote)
    with pytest.raises(WriteBackError, match=message):
        # the first workload would be fine: one missing one means no commit at all
        workloads = [WEB, workload] if namespace is None else [workload]
        write_back(target(remote), workloads, IMAGE, message=MESSAGE, cache_dir=cache, namespace=namespace)
    assert tip(remote) == main


def test_a_workload_outside_the_path_needs_a_kustomization_entry(remote: Path, cache: Path) -> None:
    with pytest.raises(WriteBackError, match=r"Deployment 'web' is only in base/deployment\.yaml, outside envs/none, "
                                             r"and no kustomization under envs/none has an images entry for 'web'"):
        seed = remote.parent / "seed"
        write(seed, {"envs/none/kustomization.yaml": "resources: [../../base]\n"})
        commit_all(seed, "an overlay without images")
        git(seed, "push", "--quiet", str(remote), "main")
        write_back(target(remote, "envs/none"), [WEB], IMAGE, message=MESSAGE, cache_dir=cache)


def test_a_hostile_manifest_is_refused_and_nothing_is_committed(remote: Path, cache: Path) -> None:
    rows = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        rows.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    seed = remote.parent / "seed"
    write(seed, {"envs/prod/zz-bomb.yaml": "\n".join(rows) + "\n"})
    main = commit_all(seed, "a hostile file")
    git(seed, "push", "--quiet", str(remote), "main")
    with pytest.raises(WriteBackError, match=r"envs/prod/zz-bomb.yaml:\d+: document expands to more than 100000 "
                                             r"nodes \(an alias bomb\?\); refusing to read further; refusing to "
                                             "write back into envs/prod"):
        write_back(target(remote), [WEB], IMAGE, message=MESSAGE, cache_dir=cache)
    assert tip(remote) == main


def test_credentials_in_the_url_never_appear_in_errors(tmp_path: Path, cache: Path) -> None:
    url = f"file://deployer:s3cret-token@{tmp_path}/nowhere.git"
    with pytest.raises(WriteBackError) as raised:
        write_back(target(url), [WEB], IMAGE, message=MESSAGE, cache_dir=cache)
    assert str(raised.value).startswith(f"cannot clone file://***@{tmp_path}/nowhere.git: ")
    assert "s3cret" not in str(raised.value)


def test_a_missing_branch_is_an_error(remote: Path, cache: Path) -> None:
    with pytest.raises(WriteBackError, match=f"branch 'release' does not exist in {remote}"):
        write_back(target(remote, branch="release"), [WEB], IMAGE, message=MESSAGE, cache_dir=cache)


# --- a local repository the user passed ---------------------------------------------------------


def snapshot(work: Path) -> dict[str, bytes]:
    return {str(p.relative_to(work)): p.read_bytes() for p in sorted(work.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(work).parts}


def test_the_working_tree_of_a_local_repository_is_never_touched(tmp_path: Path, cache: Path) -> None:
    work = tmp_path / "mine"
    work.mkdir()
    git(work, "init", "--quiet", "--initial-branch", "main")
    write(work, FILES)
    main = commit_all(work, "manifests")
    (work / "envs/prod/web.yaml").write_text(PROD.replace("replicas: 3", "replicas: 5"))  # work in progress
    (work / "notes.txt").write_text("untracked\n")
    files, status = snapshot(work), git(work, "status", "--porcelain")

    with pytest.raises(WriteBackError, match=r"branch 'main' of .*mine is checked out in .*mine; reconcile never "
                                             r"changes a working tree"):
        write_back(target(work), [WEB], IMAGE, message=MESSAGE, cache_dir=cache)
    proposed = write_back(target(work, pull_request=True), [WEB], IMAGE, message=MESSAGE, cache_dir=cache)
    assert tip(work, proposed.branch) == proposed.commit
    assert snapshot(work) == files and git(work, "status", "--porcelain") == status
    assert tip(work) == main and git(work, "symbolic-ref", "HEAD") == "refs/heads/main"

    with pytest.raises(WriteBackError, match="is checked out in"):  # the same repository as a file:// URL
        write_back(target(f"file://{work}"), [WEB], IMAGE, message=MESSAGE, cache_dir=cache)

    git(work, "checkout", "--quiet", "--detach")  # as CI checks out: main is not checked out any more
    files = snapshot(work)
    pushed = write_back(target(work), [WEB], IMAGE, message=MESSAGE, cache_dir=cache)
    assert tip(work) == pushed.commit and git(work, "rev-parse", "HEAD") == main
    assert snapshot(work) == files and "replicas: 5" in (work / "envs/prod/web.yaml").read_text()


def test_a_local_directory_inside_a_repository_is_its_repository_at_that_path(tmp_path: Path, cache: Path) -> None:
    work = tmp_path / "mine"
    work.mkdir()
    git(work, "init", "--quiet", "--initial-branch", "main")
    write(work, FILES)
    commit_all(work, "manifests")
    git(work, "checkout", "--quiet", "--detach")
    result = write_back(target(work / "envs", "prod"), [WEB], IMAGE, message=MESSAGE, cache_dir=cache)
    assert result.files == ("envs/prod/web.yaml",)


def test_a_plain_directory_cannot_be_written_back(tmp_path: Path, cache: Path) -> None:
    write(tmp_path / "plain", FILES)
    with pytest.raises(WriteBackError, match="is not a git repository; write-back commits and pushes"):
        write_back(target(tmp_path / "plain"), [WEB], IMAGE, message=MESSAGE, cache_dir=cache)


# --- the checkout the editor is handed (the edit itself: test_editor) ------------------------------


POD = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n"


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(POD + "      containers: [{name: web, image: old}]\n")
    root = tmp_path / "tree"
    root.mkdir()
    os.symlink(outside, root / "link.yaml")
    with pytest.raises(WriteBackError, match="not found"):
        plan_edit(root, ".", [WEB], IMAGE)
    os.symlink(tmp_path, root / "up")
    with pytest.raises(WriteBackError, match="leaves the repository or goes through a symlink"):
        plan_edit(root, "up", [WEB], IMAGE)

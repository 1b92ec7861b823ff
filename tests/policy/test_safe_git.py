"""Safe git (issue 14): only https, ssh, file and local paths name a repository — refused by
``validate`` for every URL a policy names and by the reader of the repo-of-record — and every git
process runs with git's other transports and its remote helpers disabled. Approval files are read
as regular files only: a symlink, or a symlinked directory on the way, is refused with the reason
the gate then shows, never followed.

The ext:: commands here would create a marker file: the tests check it never appears (and, once,
that it does appear when the protection is taken away, so the check can fail)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import git
import pytest

from reconcile.observe.state import OCI_MANIFEST, Descriptor, Image, RepositoryState
from reconcile.plan.promotion import PromotionInputs, plan_promotion
from reconcile.policy import SourceError, validate_repo
from reconcile.policy.approvals import read_approvals
from reconcile.policy.model import Approval, Gates, PromotionPolicy, Stage, Track
from reconcile.policy.source import GIT_PROTOCOLS, check_repository_url, mirror, read_snapshot, restrict_git_protocols

# --- which URLs name a repository --------------------------------------------------------------

ALLOWED = ["https://git.example.com/platform/manifests.git", "ssh://git@git.example.com/a/b.git",
           "git@github.com:org/repo.git", "file:///srv/git/policies.git", "/srv/git/policies", "policies",
           "./a:b", "https://bot@git.example.com/a.git", "HTTPS://git.example.com/a.git"]

REFUSED = [
    ("ext::sh -c touch% /tmp/pwned", "uses git's remote helper syntax ext:: (it can run any command)"),
    ("fd::17", "uses git's remote helper syntax fd::"),
    ("persistent-https::git.example.com/a", "uses git's remote helper syntax persistent-https::"),
    ("git://git.example.com/a.git", "uses git://, which is not allowed"),
    ("ftp://git.example.com/a.git", "uses ftp://, which is not allowed"),
    ("http://git.example.com/a.git", "is plain http://: anyone on the way could rewrite what is read"),
    ("https://bot:ghp_s3cret@git.example.com/a.git", "holds a password or token in its userinfo"),
    ("ssh://git:s3cret@git.example.com/a.git", "holds a password or token in its userinfo"),
    ("-uhelp", "starts with '-' (git would read it as an option)"),
    ("--upload-pack=touch /tmp/pwned", "starts with '-'"),
    ("ssh://-oProxyCommand=touch%20x/a", "names a host starting with '-'"),
    ("git@-oProxyCommand=touch:a.git", "names a host starting with '-'"),
    ("https://git.example.com/a\n.git", "contains a control character"),
    ("policies\x00", "contains a control character"),
]


@pytest.mark.parametrize("url", ALLOWED)
def test_allowed_repository_urls(url: str) -> None:
    assert check_repository_url(url) is None


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_refused_repository_urls_and_why(url: str, reason: str) -> None:
    problem = check_repository_url(url)
    assert problem is not None and problem.startswith(reason)
    assert "s3cret" not in problem and "pwned" not in problem  # the URL itself is never quoted


# --- validate: every URL a policy names ------------------------------------------------------

POLICIES = """\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: ci}}
spec: {{url: https://registry.example.com}}
---
apiVersion: reconcile/v1
kind: Cluster
metadata: {{name: prod}}
spec:
  manifests:
    repo: "{cluster}"
    path: envs/prod
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: ci-cleanup}}
spec:
  registry: ci
  repositories: ["team-a/*"]
  keep:
    - gitRefs:
        repo: "{refs}"
        branches: '^main$'
        tagCommit: '^sha-(?P<commit>[0-9a-f]{{7,40}})$'
  protect: {{inUse: [prod]}}
---
apiVersion: reconcile/v1
kind: PromotionPolicy
metadata: {{name: web}}
spec:
  stages:
    - {{name: build, registry: ci, repository: team-a/web, track: {{tags: '^v(?P<version>.+)$'}}}}
    - {{name: prod, from: build, registry: ci, repository: prod/web, tags: [prod]}}
---
apiVersion: reconcile/v1
kind: DeployPolicy
metadata: {{name: prod-web}}
spec:
  stage: web/prod
  manifests:
    repo: "{deploy}"
    path: envs/prod/web
  workloads:
    - {{kind: Deployment, name: web, container: web}}
"""


def test_validate_refuses_every_unsafe_repository_url_a_policy_names(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "policies.yaml").write_text(POLICIES.format(
        cluster=f"ext::sh -c touch% {marker}", refs="https://bot:ghp_s3cret@git.example.com/a.git",
        deploy="http://git.example.com/manifests.git"))
    validation = validate_repo(str(tmp_path))
    assert [str(p) for p in validation.problems] == [
        f"{tmp_path}/policies.yaml:11: Cluster/prod: /spec/manifests/repo: repository URL uses git's remote helper "
        "syntax ext:: (it can run any command); use https://, ssh://, user@host:path, file:// or a local path",
        f"{tmp_path}/policies.yaml:22: RetentionPolicy/ci-cleanup: /spec/keep/0/gitRefs/repo: repository URL holds "
        "a password or token in its userinfo (an inline secret, shown to every process listing and kept in git "
        "config); give git its credentials by reference instead: a credential helper, GIT_ASKPASS, or an SSH key",
        f"{tmp_path}/policies.yaml:41: DeployPolicy/prod-web: /spec/manifests/repo: repository URL is plain "
        "http://: anyone on the way could rewrite what is read (or take the credentials sent); use https://",
    ]
    assert validation.policies is None
    assert "s3cret" not in repr(validation.problems)
    assert not marker.exists()


def test_the_same_policies_with_safe_urls_are_valid(tmp_path: Path) -> None:
    (tmp_path / "policies.yaml").write_text(POLICIES.format(
        cluster="git@git.example.com:platform/manifests.git", refs="ssh://git@git.example.com/team-a/web.git",
        deploy="https://git.example.com/platform/manifests.git"))
    validation = validate_repo(str(tmp_path))
    assert validation.ok, [str(p) for p in validation.problems]


# --- the reader of the repo-of-record ---------------------------------------------------------


@pytest.mark.parametrize("template", ["ext::sh -c touch% {marker}", "ext::sh -c 'touch {marker}'",
                                      "fd::0", "git://127.0.0.1:1/{marker}", "http://127.0.0.1:1/{marker}",
                                      "https://bot:s3cret@127.0.0.1:1/{marker}", "--upload-pack=touch {marker}"])
def test_read_snapshot_refuses_an_unsafe_url_before_git_runs(tmp_path: Path, template: str) -> None:
    marker = tmp_path / "pwned"
    url = template.format(marker=marker)
    with pytest.raises(SourceError) as raised:
        read_snapshot(url, cache_dir=tmp_path / "cache")
    assert str(raised.value).endswith(check_repository_url(url) or "?")
    assert "s3cret" not in str(raised.value)
    assert not marker.exists()
    assert not (tmp_path / "cache").exists()  # nothing was cloned, not even tried


def test_the_check_also_guards_mirror_for_other_repositories(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"^cannot fetch the source repository ext::sh -c true: uses git's remote "
                                          r"helper syntax ext::"):
        mirror("ext::sh -c true", tmp_path / "cache", "the source repository")


# --- git's remote helpers, disabled for every git process ---------------------------------------


def test_git_processes_may_use_only_file_https_and_ssh() -> None:
    assert os.environ["GIT_ALLOW_PROTOCOL"] == "file:https:ssh"
    assert os.environ["GIT_PROTOCOL_FROM_USER"] == "0"
    assert GIT_PROTOCOLS == ("file", "https", "ssh")


@pytest.mark.parametrize(("given", "allowed"), [
    (None, "file:https:ssh"),
    ("ext:file:https:ssh:git:http", "file:https:ssh"),  # an operator's wider list is narrowed
    ("ssh", "ssh"),                                     # a stricter one is kept
    ("https:file", "file:https"),
    ("ext", ""),                                        # nothing in common: git may use nothing
])
def test_an_operators_own_setting_is_narrowed_never_widened(given: str | None, allowed: str) -> None:
    environ = {} if given is None else {"GIT_ALLOW_PROTOCOL": given}
    restrict_git_protocols(environ)
    assert environ == {"GIT_ALLOW_PROTOCOL": allowed, "GIT_PROTOCOL_FROM_USER": "0"}


def test_the_restriction_is_in_place_as_soon_as_the_git_users_import_their_reader() -> None:
    program = ("import os, reconcile.adapters.git.writeback, reconcile.adapters.git.refs; "
               "print(os.environ['GIT_ALLOW_PROTOCOL'], os.environ['GIT_PROTOCOL_FROM_USER'])")
    env = {**os.environ, "GIT_ALLOW_PROTOCOL": "ssh:ext"}
    env.pop("GIT_PROTOCOL_FROM_USER")
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True)
    assert done.stdout == "ssh 0\n"


def poisoned_mirror(tmp_path: Path) -> tuple[str, Path, Path, Path]:
    """A repo-of-record mirrored into a cache, then given (as a compromised cache or a hostile
    local config could) a second remote whose URL is an ext:: command, with ext allowed in the
    repository's own config: (url, cache, mirror directory, marker the command would create)."""
    origin = tmp_path / "origin"
    with git.Repo.init(origin, initial_branch="main") as repository:
        (origin / "registry.yaml").write_text("apiVersion: reconcile/v1\nkind: Registry\nmetadata: {name: ci}\n"
                                              "spec: {url: 'https://r.example.com'}\n")
        repository.index.add(["registry.yaml"])
        repository.index.commit("policies", author=git.Actor("t", "t@example.com"),
                                committer=git.Actor("t", "t@example.com"))
    url, cache = f"file://{origin}", tmp_path / "cache"
    read_snapshot(url, cache_dir=cache)
    (directory,) = [p for p in cache.iterdir() if p.is_dir()]
    marker = tmp_path / "pwned"
    with git.Repo(directory) as repository, repository.config_writer() as config:
        config.set_value("protocol \"ext\"", "allow", "always")
        config.set_value("remote \"evil\"", "url", f"ext::sh -c touch% {marker}")
        config.set_value("remote \"evil\"", "fetch", "+refs/heads/*:refs/evil/*")
    return url, cache, directory, marker


def test_an_ext_remote_in_a_repository_config_is_never_run(tmp_path: Path) -> None:
    url, cache, directory, marker = poisoned_mirror(tmp_path)
    with pytest.raises(SourceError, match=r"^cannot fetch the repo-of-record file://"):
        read_snapshot(url, cache_dir=cache)
    assert not marker.exists()
    # Why: git itself refuses the transport, in this process's environment, whatever the config says.
    done = subprocess.run(["git", "-C", str(directory), "fetch", "evil"], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "transport 'ext' not allowed" in done.stderr
    assert not marker.exists()


def test_without_the_restriction_the_same_remote_would_run(tmp_path: Path) -> None:
    """The control: the check above can fail. git run bare, without reconcile's environment."""
    _url, _cache, directory, marker = poisoned_mirror(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_ALLOW_PROTOCOL", "GIT_PROTOCOL_FROM_USER")}
    subprocess.run(["git", "-C", str(directory), "fetch", "evil"], env=env, capture_output=True, check=False)
    assert marker.exists()


# --- approval files: regular files only ---------------------------------------------------------

APPROVAL = "approvals:\n  - {version: '2', approvedBy: alice}\n"
FORGED = "approvals:\n  - {version: '2', approvedBy: mallory}\n"
A_SYMLINK = "is a symlink; approval files must be regular files, and symlinks are never followed"


def through(directory: str) -> str:
    return f"is reached through a symlink ({directory}); approval files must be regular files, and symlinks are " \
           "never followed"


def approvals_source(tmp_path: Path, mode: str) -> tuple[Path, str | None]:
    """A repo-of-record (a git commit, or a plain directory) beside a directory ``outside`` of
    forged approvals, with approval files that are symlinks, or below symlinked directories,
    inside and out; one regular approval file."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "prod.txt").write_text(FORGED)
    (outside / "web-prod.yaml").write_text(FORGED)
    root = tmp_path / "repo"
    (root / "approvals").mkdir(parents=True)
    (root / "approvals/real.yaml").write_text(APPROVAL)
    (root / "notes.txt").write_text(APPROVAL)
    links = {
        "approvals/web-prod.yaml": "../../outside/prod.txt",  # another extension, outside
        "approvals/inside.yaml": "real.yaml",                 # inside the repository
        "approvals/other.yml": "../notes.txt",                # another extension, inside
        "forged": "../outside",                               # a symlinked directory, outside
        "shared": "approvals",                                # a symlinked directory, inside
    }
    for name, target in links.items():
        os.symlink(target, root / name)
    if mode == "plain":
        return root, None
    with git.Repo.init(root, initial_branch="main") as repository:
        repository.index.add(["approvals/real.yaml", "notes.txt", *links])
        for name in links:
            assert repository.index.entries[(name, 0)].mode == 0o120000, name  # committed as symlinks
        commit = repository.index.commit("approvals", author=git.Actor("t", "t@example.com"),
                                         committer=git.Actor("t", "t@example.com")).hexsha
    return root, commit


@pytest.mark.parametrize("mode", ["git", "plain"])
def test_an_approval_file_through_a_symlink_is_refused_with_the_reason(tmp_path: Path, mode: str) -> None:
    root, commit = approvals_source(tmp_path, mode)
    found = read_approvals(str(root), commit, ["approvals/real.yaml", "approvals/web-prod.yaml",
                                               "approvals/inside.yaml", "approvals/other.yml", "forged/web-prod.yaml",
                                               "forged/prod.txt", "shared/real.yaml", "approvals/missing.yaml"])
    assert found == {
        "approvals/real.yaml": (Approval("alice", version="2"),),
        "approvals/web-prod.yaml": A_SYMLINK,
        "approvals/inside.yaml": A_SYMLINK,
        "approvals/other.yml": A_SYMLINK,
        "forged/web-prod.yaml": through("forged"),
        "forged/prod.txt": through("forged"),
        "shared/real.yaml": through("shared"),
        "approvals/missing.yaml": "does not exist at this commit" if mode == "git" else "does not exist",
    }
    assert "mallory" not in repr(found)


@pytest.mark.parametrize("mode", ["git", "plain"])
def test_the_plan_shows_why_the_approval_gate_is_closed(tmp_path: Path, mode: str) -> None:
    root, commit = approvals_source(tmp_path, mode)
    approvals = read_approvals(str(root), commit, ["approvals/web-prod.yaml"])

    def holding(tags: dict[str, int]) -> RepositoryState:
        digests = {n: f"sha256:{n:064x}" for n in tags.values()}
        return RepositoryState("r", "x", {t: Descriptor(OCI_MANIFEST, digests[n], 1) for t, n in tags.items()},
                               {d: Image(d, OCI_MANIFEST, None) for d in digests.values()})

    pipeline = PromotionPolicy("web", (
        Stage("build", "ci", "web", track=Track(re.compile(r"^build-(?P<version>\d+)$"), "numeric", None, None)),
        Stage("prod", "prod", "web", source="build", tags=("prod",), gates=Gates(approval="approvals/web-prod.yaml"))))
    stages = {"build": holding({"build-2": 2}), "prod": holding({"prod": 1})}
    (action,) = plan_promotion(pipeline, PromotionInputs(stages, approvals=approvals),  # type: ignore[arg-type]
                               datetime(2026, 11, 20, tzinfo=UTC))
    assert action.kind == "blocked"
    assert action.reason.endswith(f"approval blocked: approvals/web-prod.yaml {A_SYMLINK}")


def test_an_approval_file_too_big_or_not_a_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "approvals").mkdir()
    (tmp_path / "big.yaml").write_bytes(b"#" * (1024 * 1024 + 1))
    assert read_approvals(str(tmp_path), None, ["big.yaml", "approvals"]) == {
        "big.yaml": "is 1048577 bytes, over the limit of 1048576 bytes for approval files",
        "approvals": "is not a regular file",
    }

"""Refs' histories for gitRefs rules that count images per reference or limit the references
(werf's keepPolicies): a real repository with dated commits and tags, read through the adapter,
then planned end to end against an OCI-layout registry."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import git
import pytest

from reconcile.adapters.git.refs import live_commits, ref_histories
from reconcile.observe.state import GitHistories
from reconcile.policy.model import GitRefs, GitRefsLimit

T0 = 1_795_000_000  # Unix seconds of the first commit; each next one an hour later


def dated(repo: git.Repo, message: str, at: int) -> str:
    stamp = f"{at} +0000"
    return repo.index.commit(message, author_date=stamp, commit_date=stamp).hexsha


@pytest.fixture
def source(tmp_path: Path) -> tuple[git.Repo, dict[str, str]]:
    """main: m1..m5, an hour apart; feature off m2: f1; annotated tag v1 on m3, tagged a day after
    it; lightweight tag v0 on m1."""
    repo = git.Repo.init(tmp_path / "src", initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "t").set_value("user", "email", "t@example.com")
    shas = {}
    for n in (1, 2, 3, 4, 5):
        shas[f"m{n}"] = dated(repo, f"m{n}", T0 + (n - 1) * 3600)
        if n == 1:
            repo.create_tag("v0")
        if n == 2:
            repo.create_head("feature").checkout()
            shas["f1"] = dated(repo, "f1", T0 + 90 * 60)
            repo.heads.main.checkout()
        if n == 3:
            repo.git.tag("-a", "v1", "-m", "release 1", env={"GIT_COMMITTER_DATE": f"{T0 + 86400} +0000"})
    return repo, shas


def rule(repo: git.Repo, **kwargs: object) -> GitRefs:
    return GitRefs(repo=str(repo.working_tree_dir), **{"branches": re.compile(".*"), "tags": re.compile(".*"),
                                                       "images_per_reference": GitRefsLimit(last=1), **kwargs})  # type: ignore[arg-type]


def test_each_ref_with_its_head_date_and_its_history_newest_first(source: tuple[git.Repo, dict[str, str]]) -> None:
    repo, shas = source
    found = ref_histories(rule(repo))
    by = {r.ref: r for r in found.refs}
    assert list(by) == ["refs/heads/feature", "refs/heads/main", "refs/tags/v0", "refs/tags/v1"]
    assert by["refs/heads/main"].commits == tuple((shas[f"m{n}"], T0 + (n - 1) * 3600) for n in (5, 4, 3, 2, 1))
    assert by["refs/heads/feature"].commits == ((shas["f1"], T0 + 5400), (shas["m2"], T0 + 3600),
                                                (shas["m1"], T0))
    assert by["refs/heads/main"].created == T0 + 4 * 3600  # its head commit's committer date
    # a git tag looks at its own commit only (werf scans a tag to depth 1); an annotated tag is dated
    # by its tagger, a lightweight one by its commit
    assert (by["refs/tags/v1"].commits, by["refs/tags/v1"].created) == (((shas["m3"], T0 + 7200),), T0 + 86400)
    assert (by["refs/tags/v0"].commits, by["refs/tags/v0"].created) == (((shas["m1"], T0),), T0)
    assert not any(r.truncated for r in found.refs) and found.depth == 1000


def test_a_walk_stops_at_its_depth_and_says_so(source: tuple[git.Repo, dict[str, str]]) -> None:
    repo, shas = source
    found = ref_histories(rule(repo, tags=None), depth=3)
    by = {r.ref: r for r in found.refs}
    assert [c for c, _ in by["refs/heads/main"].commits] == [shas["m5"], shas["m4"], shas["m3"]]
    assert by["refs/heads/main"].truncated and not by["refs/heads/feature"].truncated  # f1, m2, m1: all of it
    assert found.depth == 3


def test_with_commits_per_branch_each_ref_reads_its_commits(source: tuple[git.Repo, dict[str, str]]) -> None:
    """A limit without imagesPerReference: the same commits as live_commits, now with dates."""
    repo, _ = source
    refs = rule(repo, images_per_reference=None, commits_per_branch=2, limit=GitRefsLimit(last=1))
    found = ref_histories(refs)
    assert found.commits() == live_commits(refs)
    assert {r.ref: len(r.commits) for r in found.refs} == {
        "refs/heads/feature": 2, "refs/heads/main": 2, "refs/tags/v0": 1, "refs/tags/v1": 2}


def test_the_planner_counts_images_on_what_was_observed(tmp_path: Path,
                                                       source: tuple[git.Repo, dict[str, str]]) -> None:
    """End to end: observe() reads the histories for an imagesPerReference rule and the plan keeps
    the images of main's last 2 images (m5 and m4 are one image) and feature's last one, limited
    to the branch with the newest head; commitsPerBranch: 2 would have kept m4 and m5 only."""
    from reconcile.observe.world import observe
    from reconcile.plan import build_plan
    from reconcile.policy import load_policies
    from reconcile.policy.secrets import SecretResolver
    from tests.adapters.registry.oci import Layout

    repo, shas = source
    layout = Layout(tmp_path / "registry" / "team" / "app")
    builds = {name: layout.image(seed=n, created="2026-01-01T00:00:00Z") for n, name in enumerate(shas)}
    builds["m4"] = builds["m5"]  # m4 changed nothing the image is built from
    for name in ("m5", "m4", "m3", "m2", "f1"):
        layout.tag(builds[name], f"sha-{shas[name][:12]}")
    root = tmp_path / "policies"
    root.mkdir()
    (root / "policies.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: local}}
spec: {{url: "oci-layout:{tmp_path / 'registry'}"}}
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: images}}
spec:
  registry: local
  repositories: ["team/app"]
  keep:
    - gitRefs:
        repo: {repo.working_tree_dir}
        branches: '.*'
        tagCommit: '^sha-(?P<commit>[0-9a-f]{{7,40}})$'
        imagesPerReference: {{last: 2}}
        limit: {{last: 1}}
""")
    policies = load_policies(str(root))
    seen = observe(policies, resolver=SecretResolver(environ={}), read_cluster=None,
                   observed_at="2026-11-22T00:00:00Z", cache_dir=tmp_path / "cache")
    assert isinstance(seen.retention["images"].git_commits[0], GitHistories)
    plan = build_plan(policies, seen, {}, now=datetime.fromtimestamp(T0, UTC) + timedelta(days=2))
    kept = sorted(a.target.rsplit(":", 1)[1] for a in plan.actions if a.kind == "keep")
    pruned = sorted(t for a in plan.actions if a.kind == "prune" for t in a.tags)
    tag = {name: f"sha-{sha[:12]}" for name, sha in shas.items()}
    assert kept == sorted([tag["m5"], tag["m4"], tag["m3"]])  # main only: feature's head (f1) is older
    assert pruned == sorted([tag["m2"], tag["f1"]])
    reasons = {a.target.rsplit(":", 1)[1]: a.reason for a in plan.actions if a.kind == "keep"}
    assert reasons[tag["m3"]] == f"keep[0]: image 2 of the last 2 of branch main (built from commit {shas['m3'][:12]})"

"""Bulk tag listing (Registry ``spec.listing``): Harbor's artifacts API, GitLab's and Docker Hub's
tags APIs and ECR's DescribeImages (signed with AWS SigV4), faked in their documented shapes in
front of a real registry that holds the images (the digests the fakes answer are the registry's
own). What it costs, what it is trusted for, and where the Distribution API stays the witness."""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reconcile.adapters.registry import RegistryError, sigv4
from reconcile.adapters.registry.auth import Authenticator
from reconcile.adapters.registry.listing import ECRAPI, ListingClient, epoch_time, rfc3339_time
from reconcile.adapters.registry.transport import Transport
from reconcile.cli import cli
from reconcile.observe.repositories import observe_repository
from reconcile.observe.state import EMPTY, OCI_MANIFEST
from reconcile.policy.model import AWSCredentialRefs, Limits, Listing, ListingAPI, Registry
from reconcile.policy.secrets import Secret, SecretRef
from tests.adapters.registry.listing_fakes import ListingFake, Seen
from tests.adapters.registry.oci import Built, Layout, push, put_tag
from tests.conftest import OpenClient, RunningRegistry, registry_policy

DISTINCT = 200  # tags on a digest of their own
TAGS = DISTINCT + 5  # and five more on digests already tagged
PAGE = 100


def _fill(layout: Layout, registry: RunningRegistry, repository: str) -> dict[str, str]:
    """``TAGS`` tags on ``DISTINCT + 1`` digests: one image pushed, then manifests that differ by an
    annotation (same config and layer) put under their tags. tag -> digest."""
    base = layout.image(created="2026-11-01T00:00:00Z")
    layout.tag(base, "base")
    push(layout, "base", registry.host, repository)
    document = json.loads(base.data)
    tags = {"base": base.digest}
    built: list[Built] = []
    for number in range(DISTINCT):
        image = layout.manifest({**document, "annotations": {"build": str(number)}}, OCI_MANIFEST)
        put_tag(registry.url, repository, f"t{number:03d}", image)
        tags[f"t{number:03d}"] = image.digest
        built.append(image)
    for number in range(TAGS - DISTINCT - 1):
        put_tag(registry.url, repository, f"alias-{number}", built[number])
        tags[f"alias-{number}"] = built[number].digest
    return tags


@pytest.fixture(scope="module")
def filled(plain_registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Two repositories of ``TAGS`` tags: a nested Harbor one (PROJECT/TEAM/NAME) and a Docker Hub one."""
    prefix = f"lst-{secrets.token_hex(3)}"
    layout = Layout(tmp_path_factory.mktemp("listing"))
    return {name: _fill(layout, plain_registry, name) for name in (f"{prefix}/team/app", f"{prefix}/app")}


@pytest.fixture
def fakes(plain_registry: RunningRegistry) -> Iterator[dict[str, ListingFake]]:
    made: dict[str, ListingFake] = {}
    yield made
    for fake in made.values():
        fake.close()


# ECR: the IAM access key the fake accepts; the secret key in a file (tests open clients without an environment).
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "ecr-secret-" + secrets.token_hex(12)
AWS_SECRET_FILE = Path(tempfile.mkdtemp(prefix="ecr-")) / "aws-secret-access-key"
AWS_SECRET_FILE.write_text(AWS_SECRET + "\n")


def _fake(fakes: dict[str, ListingFake], registry: RunningRegistry, api: str, **options: Any) -> ListingFake:
    if api == "ecr":
        options.setdefault("aws", (AWS_KEY_ID, AWS_SECRET, None))
    fake = ListingFake(registry.url, api, **options)
    if api == "ecr":
        fake.ecr_page = PAGE  # ECR may answer fewer than maxResults: pages of 100 images, as Harbor's
    fakes[f"{api}-{len(fakes)}"] = fake
    return fake


def _keys(secret: SecretRef | None = None, token: SecretRef | None = None) -> AWSCredentialRefs:
    return AWSCredentialRefs(AWS_KEY_ID, secret or SecretRef("file", path=str(AWS_SECRET_FILE)), token)


def _policy(fake: ListingFake, api: str | None, **options: object) -> Registry:
    policy = registry_policy("hub", fake.url, **options)  # type: ignore[arg-type]
    if api is None:
        return policy
    if api == "ecr":  # ECR's API on another host: an explicitly configured endpoint (allowedHosts), its region
        return replace(policy, allowed_hosts=(*policy.allowed_hosts, f"localhost:{fake.port}"),
                       listing=Listing("ecr", fake.other_url, "eu-west-1", _keys()))
    chosen: ListingAPI = "harbor" if api == "harbor" else "gitlab" if api == "gitlab" else "dockerhub"
    return replace(policy, listing=Listing(chosen, fake.other_url if api == "dockerhub" else fake.url))


def _repository(filled: dict[str, dict[str, str]], api: str) -> str:
    return next(name for name in filled if (name.count("/") == 2) == (api != "dockerhub"))


def _by_tag(seen: list[Seen]) -> list[Seen]:
    return [s for s in seen if "/manifests/" in s.path and not s.path.rsplit("/", 1)[1].startswith("sha256:")]


@pytest.mark.parametrize("api", ["harbor", "gitlab", "dockerhub", "ecr"])
def test_a_warm_observation_costs_one_request_per_page_of_tags(
        api: str, plain_registry: RunningRegistry, filled: dict[str, dict[str, str]],
        fakes: dict[str, ListingFake], open_client: OpenClient, tmp_path: Path) -> None:
    repository = _repository(filled, api)
    fake = _fake(fakes, plain_registry, api)
    listing = open_client(_policy(fake, api), cache_dir=tmp_path / "with")
    with fake.recording() as cold:
        state = observe_repository(listing, repository)
    assert {tag: d.digest for tag, d in state.tags.items()} == filled[repository]

    # Cold: the pages, then each distinct manifest once, by digest, and the one config once.
    pages = [s for s in cold if s.listing]
    # Harbor and ECR page artifacts (a digest and all its tags), GitLab and Docker Hub tags.
    expected_pages = math.ceil((DISTINCT + 1 if api in ("harbor", "ecr") else TAGS) / PAGE)
    assert len(pages) == expected_pages == 3
    assert not _by_tag(cold)  # no request per tag
    by_digest = [s.path for s in cold if "/manifests/sha256:" in s.path]
    assert len(by_digest) == len(set(by_digest)) == DISTINCT + 1
    assert len([s for s in cold if "/blobs/" in s.path]) == 1  # the shared config
    assert {s.method for s in cold} == ({"GET", "POST"} if api == "ecr" else {"GET"})  # DescribeImages is a POST

    # Warm: the pages alone.
    with fake.recording() as warm:
        assert observe_repository(listing, repository) == state
    assert [s.path.split("?")[0] for s in warm] == [pages[0].path.split("?")[0]] * expected_pages
    assert len(warm) == expected_pages  # 205 tags in 3 requests; the Distribution API: 1 + 205

    # Every digest with the push time the listing gives (Docker Hub, GitLab: its tags' latest); no untagged.
    fake_time = datetime.fromtimestamp(1793491200.123, UTC) if api == "ecr" else datetime(2026, 11, 1, tzinfo=UTC)
    assert dict(state.pushed) == {digest: fake_time for digest in set(filled[repository].values())}
    assert state.untagged == frozenset()

    # The same state as the Distribution API alone gives (media types and sizes the manifests' own),
    # which says no push times.
    plain = open_client(_policy(fake, None), cache_dir=tmp_path / "without")
    with fake.recording() as distribution:
        assert observe_repository(plain, repository) == replace(state, pushed=EMPTY)
    assert len(_by_tag(distribution)) == TAGS
    with fake.recording() as distribution_warm:
        assert observe_repository(plain, repository) == replace(state, pushed=EMPTY)
    assert len(distribution_warm) == TAGS + 1  # the tag list and a HEAD per tag


def test_harbor_pages_are_followed_by_link_or_by_the_total_count(
        plain_registry: RunningRegistry, filled: dict[str, dict[str, str]], fakes: dict[str, ListingFake],
        open_client: OpenClient, tmp_path: Path) -> None:
    repository = _repository(filled, "harbor")
    fake = _fake(fakes, plain_registry, "harbor")
    client = open_client(_policy(fake, "harbor"))
    with fake.recording() as seen:
        assert client.list_tags(repository).tags == filled[repository]
    project, team_app = repository.split("/", 1)
    assert seen[0].path == (
        f"/api/v2.0/projects/{project}/repositories/{team_app.replace('/', '%252F')}/artifacts?page=1&page_size=100"
        "&with_tag=true&with_label=false&with_scan_overview=false&with_signature=false"
        "&with_immutable_status=false&with_accessory=false")
    assert ["page=2" in s.path for s in seen] == [False, True, False] and "page=3" in seen[2].path

    fake.drop_link = True  # a proxy that drops Link: X-Total-Count says a page follows
    with fake.recording() as seen:
        assert client.list_tags(repository).tags == filled[repository]
    assert len(seen) == 3


@pytest.mark.parametrize("api", ["harbor", "gitlab", "dockerhub", "ecr"])
def test_a_listing_that_loops_or_passes_the_page_cap_fails(
        api: str, plain_registry: RunningRegistry, filled: dict[str, dict[str, str]],
        fakes: dict[str, ListingFake], open_client: OpenClient) -> None:
    repository = _repository(filled, api)
    fake = _fake(fakes, plain_registry, api)
    capped = open_client(replace(_policy(fake, api), limits=Limits(max_pages=2)))
    capped_message = r"more than 2 pages \(the limit limits.maxPages\)"
    with fake.recording() as seen, pytest.raises(RegistryError, match=capped_message):
        capped.list_tags(repository)
    assert len(seen) == 2
    small = open_client(replace(_policy(fake, api), limits=Limits(list_page_bytes=1024)))
    with pytest.raises(RegistryError, match=r"larger than the 1024 bytes allowed \(limits.listPageBytes\)"):
        small.list_tags(repository)
    fake.loop = True
    with pytest.raises(RegistryError, match="pagination links loop"):
        open_client(_policy(fake, api)).list_tags(repository)


def test_invalid_entries_are_skipped_and_a_tag_without_a_usable_digest_is_resolved_alone(
        plain_registry: RunningRegistry, filled: dict[str, dict[str, str]], fakes: dict[str, ListingFake],
        open_client: OpenClient, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    repository = _repository(filled, "harbor")
    fake = _fake(fakes, plain_registry, "harbor")
    digest = filled[repository]["t001"]
    fake.extra = ["not an artifact", {"digest": digest, "tags": [{"name": "-not a tag"}, {"name": 7}, "x"]},
                  {"digest": "sha256:short", "tags": [{"name": "base"}]},  # a second, invalid, digest for base
                  {"digest": digest, "tags": None}, {"tags": [{"name": "t002"}]}]
    client = open_client(_policy(fake, "harbor"), cache_dir=tmp_path / "cache")
    with caplog.at_level(logging.WARNING), fake.recording() as seen:
        state = observe_repository(client, repository)
    assert {tag: d.digest for tag, d in state.tags.items()} == filled[repository]
    assert "-not a tag" not in state.tags
    assert sorted(s.path.rsplit("/", 1)[1] for s in _by_tag(seen)) == ["base", "t002"]  # asked one by one
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "skipped 4 entries that are not valid OCI tags" in messages
    assert "2 tags without a valid digest (base, t002); resolved one by one instead" in messages


def test_docker_hub_entries_without_a_digest_are_resolved_alone(
        plain_registry: RunningRegistry, filled: dict[str, dict[str, str]], fakes: dict[str, ListingFake],
        open_client: OpenClient, tmp_path: Path) -> None:
    repository = _repository(filled, "dockerhub")
    fake = _fake(fakes, plain_registry, "dockerhub")
    fake.hide = {"t002"}
    fake.extra = [5, {"name": "not a tag!", "digest": filled[repository]["t001"]},
                  {"name": "t002", "digest": None, "media_type": "application/vnd.oci.image.manifest.v1+json"}]
    with fake.recording() as seen:
        state = observe_repository(open_client(_policy(fake, "dockerhub"), cache_dir=tmp_path / "c"), repository)
    assert {tag: d.digest for tag, d in state.tags.items()} == filled[repository]
    assert [s.path.rsplit("/", 1)[1] for s in _by_tag(seen)] == ["t002"]


@pytest.mark.parametrize("api", ["harbor", "gitlab", "dockerhub", "ecr"])
def test_a_listing_naming_a_digest_the_registry_does_not_have_fails_the_observation(
        api: str, plain_registry: RunningRegistry, filled: dict[str, dict[str, str]],
        fakes: dict[str, ListingFake], open_client: OpenClient) -> None:
    repository = _repository(filled, api)
    fake = _fake(fakes, plain_registry, api)
    wrong = "sha256:" + "0" * 64
    fake.lie = {"t005": wrong}
    with pytest.raises(RegistryError, match=rf"listing API says tag t005 points at {wrong}, which the registry does "
                                            "not have"):
        observe_repository(open_client(_policy(fake, api)), repository)


def test_harbor_gets_basic_credentials_only_on_an_allowed_host(
        plain_registry: RunningRegistry, filled: dict[str, dict[str, str]], fakes: dict[str, ListingFake],
        open_client: OpenClient) -> None:
    repository = _repository(filled, "harbor")
    fake = _fake(fakes, plain_registry, "harbor", user="robot$ci", password="s3cret-harbor")
    env = {"HARBOR_PW": "s3cret-harbor"}
    own = _policy(fake, "harbor", password_env="HARBOR_PW", username="robot$ci")
    with fake.recording() as seen:
        assert open_client(own, env).list_tags(repository).tags == filled[repository]
    assert {s.authorization for s in seen} == {"Basic cm9ib3QkY2k6czNjcmV0LWhhcmJvcg=="}

    elsewhere = replace(own, listing=Listing("harbor", fake.other_url))  # localhost: not in allowedHosts
    with fake.recording() as seen, pytest.raises(RegistryError) as raised:
        open_client(elsewhere, env).list_tags(repository)
    assert [s.authorization for s in seen] == [None]
    assert (f"authentication failed for registry hub: credentials withheld from localhost:{fake.port} (not in "
            f"allowedHosts: {own.allowed_hosts[0]}): add 'localhost:{fake.port}' to allowedHosts") in str(raised.value)

    allowed = replace(elsewhere, allowed_hosts=(*own.allowed_hosts, f"localhost:{fake.port}"))
    assert open_client(allowed, env).list_tags(repository).tags == filled[repository]


def test_docker_hub_tokens_go_only_to_an_allowed_host(
        plain_registry: RunningRegistry, filled: dict[str, dict[str, str]], fakes: dict[str, ListingFake],
        open_client: OpenClient, tmp_path: Path) -> None:
    repository = _repository(filled, "dockerhub")
    fake = _fake(fakes, plain_registry, "dockerhub", user="ci", password="dckr_pat_hub")
    env = {"HUB_PAT": "dckr_pat_hub"}
    hub = _policy(fake, "dockerhub", password_env="HUB_PAT", username="ci")  # allowedHosts: 127.0.0.1:PORT alone
    with fake.recording() as seen, pytest.raises(RegistryError) as raised:
        open_client(hub, env).list_tags(repository)
    assert [(s.method, s.authorization) for s in seen] == [("GET", None)]  # no token asked for, none sent
    assert (f"credentials withheld from the listing url localhost:{fake.port} (not in allowedHosts: "
            f"{hub.allowed_hosts[0]})") in str(raised.value)

    allowed = replace(hub, allowed_hosts=(*hub.allowed_hosts, f"localhost:{fake.port}"))
    client = open_client(allowed, env, cache_dir=tmp_path / "cache")
    with fake.recording() as seen:
        state = observe_repository(client, repository)
    assert {tag: d.digest for tag, d in state.tags.items()} == filled[repository]
    posts = [s for s in seen if s.method == "POST"]
    assert [s.path for s in posts] == ["/v2/auth/token"]  # one token for every page
    listed = [s for s in seen if s.path.startswith("/v2/namespaces/")]
    assert len(listed) == 3 and {s.authorization for s in listed} == {f"Bearer {t}" for t in fake.tokens}
    # The registry (no auth) never sees the Hub token; the Hub never sees the password.
    assert not [s for s in seen if s.host.startswith("127.0.0.1") and s.authorization]
    assert not [s for s in seen if s.authorization and "Basic" in s.authorization]


# -- the plan, end to end: a policy directory, the command line --------------------------------------
def _policies(root: Path, url: str, repository: str, listing: str) -> Path:
    root.mkdir()
    (root / "ci.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: ci}}
spec: {{url: "{url}"{listing}}}
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: ci-cleanup}}
spec:
  registry: ci
  repositories: ["{repository}"]
  keep:
    - tags: '^v\\d+$'
  maxDeletions: 100
""")
    return root


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def small(tmp_path: Path, plain_registry: RunningRegistry, repo: str) -> dict[str, str]:
    """v1 and v2 kept; build-1 and build-2 (one digest) and build-3 pruned."""
    layout = Layout(tmp_path / "layout")
    names = ["v1", "v2", "b12", "b3"]
    built = {name: layout.image(created=f"2026-11-0{i}T00:00:00Z") for i, name in enumerate(names, 1)}
    for tag, image in (("v1", "v1"), ("v2", "v2"), ("build-1", "b12"), ("build-3", "b3")):
        layout.tag(built[image], tag)
        push(layout, tag, plain_registry.host, repo)
    put_tag(plain_registry.url, repo, "build-2", built["b12"])
    return {name: b.digest for name, b in built.items()}


def _tags(fake: ListingFake, repository: str) -> list[str]:
    return [tag for tag, *_ in fake.held(repository)]


def test_the_plan_is_the_same_with_and_without_the_listing_and_a_lying_one_deletes_nothing_wrong(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, small: dict[str, str],
        fakes: dict[str, ListingFake], monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake(fakes, plain_registry, "harbor")
    with_listing = _policies(tmp_path / "with", fake.url, repo, ", listing: {api: harbor}")
    without = _policies(tmp_path / "without", fake.url, repo, "")
    plans = {}
    for name, root in (("with", with_listing), ("without", without)):
        monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / f"cache-{name}"))
        with fake.recording() as seen:
            result = _invoke("plan", "--repo", str(root), "--audit-db", str(tmp_path / "audit.db"), "--format", "json")
        assert result.exit_code == 0, result.output
        plans[name] = json.loads(result.stdout)
        assert bool([s for s in seen if s.listing]) == (name == "with")
    assert plans["with"]["actions"] == plans["without"]["actions"]
    volatile = ("repo", "observedAt", "contentHash")  # the policy directory, the time, the hash of both
    assert {k: v for k, v in plans["with"].items() if k not in volatile} == \
        {k: v for k, v in plans["without"].items() if k not in volatile}
    pruned = sorted((a["target"].split("@")[-1], a["tags"]) for a in plans["with"]["actions"] if a["kind"] == "prune")
    assert pruned == sorted([(small["b12"], ["build-1", "build-2"]), (small["b3"], ["build-3"])])

    # A digest the registry does not have: the observation fails, nothing is planned for deletion.
    fake.lie = {"build-3": "sha256:" + "0" * 64}
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache-lie"))
    result = _invoke("plan", "--repo", str(with_listing), "--audit-db", str(tmp_path / "audit.db"), "--format", "json")
    assert result.exit_code == 1
    assert "which the registry does not have" in result.output
    assert not [a for a in json.loads(result.stdout)["actions"] if a["kind"] == "prune"]

    # A real digest on the wrong tag (build-3 said to be on v2's digest, v2 left out): the plan
    # prunes v2's digest, and apply, re-verifying on the Distribution API, does not.
    fake.lie, fake.hide = {"build-3": small["v2"]}, {"v2"}
    db = str(tmp_path / "apply.db")
    applied = _invoke("apply", "--repo", str(with_listing), "--audit-db", db)
    assert applied.exit_code in (0, 1), applied.output
    fake.lie, fake.hide = {}, set()
    assert _tags(fake, repo) == ["build-3", "v1", "v2"]  # build-1/2 pruned; v2's digest kept
    assert "tag build-3 now points at" in applied.output


def test_gitlab_takes_the_registrys_own_credentials_and_a_registry_without_the_api_is_asked_tag_by_tag(
        auth_registry: RunningRegistry, plain_registry: RunningRegistry, filled: dict[str, dict[str, str]],
        fakes: dict[str, ListingFake], open_client: OpenClient, tmp_path: Path) -> None:
    assert auth_registry.auth is not None
    repository = f"lst-{secrets.token_hex(3)}/group/project/app"
    layout = Layout(tmp_path / "layout")
    image = layout.image(created="2026-11-01T00:00:00Z")
    layout.tag(image, "v1")
    push(layout, "v1", auth_registry.host, repository, auth_registry.creds)
    put_tag(auth_registry.url, repository, "latest", image, auth_registry.auth)
    fake = _fake(fakes, auth_registry, "gitlab", upstream_auth=auth_registry.auth)
    env = {"REGISTRY_PW": auth_registry.auth[1]}
    policy = _policy(fake, "gitlab", password_env="REGISTRY_PW", username=auth_registry.auth[0])
    with fake.recording() as seen:
        state = observe_repository(open_client(policy, env, cache_dir=tmp_path / "cache"), repository)
    assert {tag: d.digest for tag, d in state.tags.items()} == {"latest": image.digest, "v1": image.digest}
    listed = [s for s in seen if s.listing]
    assert [s.path for s in listed][-1] == f"/gitlab/v1/repositories/{repository}/tags/list/?n=100"
    assert listed[-1].authorization == "Basic " + base64.b64encode(":".join(auth_registry.auth).encode()).decode()
    assert not _by_tag(seen)

    # A registry without /gitlab/v1/ (distribution answers 404): the Distribution API, tag by tag.
    plain = _fake(fakes, plain_registry, "harbor")  # serves no /gitlab/v1/: forwarded, 404
    other = _repository(filled, "gitlab")
    with plain.recording() as seen:
        state = observe_repository(open_client(_policy(plain, "gitlab"), cache_dir=tmp_path / "plain"), other)
    assert {tag: d.digest for tag, d in state.tags.items()} == filled[other]
    assert len([s for s in seen if s.listing]) == 1 and len(_by_tag(seen)) == TAGS


# -- ECR: DescribeImages, signed ---------------------------------------------------------------------
MANY = 1005  # images of their own: two pages of up to 1,000


@pytest.fixture(scope="module")
def many(plain_registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """A repository of ``MANY`` digests and ``MANY + 20`` tags (20 aliases)."""
    repository = f"ecr-{secrets.token_hex(3)}/many"
    layout = Layout(tmp_path_factory.mktemp("many"))
    base = layout.image(created="2026-11-01T00:00:00Z")
    layout.tag(base, "base")
    push(layout, "base", plain_registry.host, repository)
    document = json.loads(base.data)
    tags = {"base": base.digest}
    for number in range(MANY - 1):
        image = layout.manifest({**document, "annotations": {"n": str(number)}}, OCI_MANIFEST)
        put_tag(plain_registry.url, repository, f"n{number:04d}", image)
        tags[f"n{number:04d}"] = image.digest
        if number < 20:
            put_tag(plain_registry.url, repository, f"alias-{number}", image)
            tags[f"alias-{number}"] = image.digest
    return repository, tags


def test_ecr_describe_images_is_signed_and_paged_by_next_token_1000_images_a_request(
        plain_registry: RunningRegistry, many: tuple[str, dict[str, str]], fakes: dict[str, ListingFake],
        open_client: OpenClient) -> None:
    repository, tags = many
    fake = _fake(fakes, plain_registry, "ecr")
    fake.ecr_page = 1000  # as ECR answers maxResults 1000
    client = open_client(_policy(fake, "ecr"))
    with fake.recording() as seen:
        assert client.list_tags(repository).tags == tags
    assert len(tags) == MANY + 20
    assert [(s.method, s.host, s.path) for s in seen] == [("POST", f"localhost:{fake.port}", "/")] * 2
    assert fake.ecr_bodies == [  # no filter: tagged and untagged images
        {"repositoryName": repository, "maxResults": 1000},
        {"repositoryName": repository, "maxResults": 1000, "nextToken": fake.ecr_bodies[1]["nextToken"]}]
    for sent in seen:
        assert sent.authorization is not None
        assert sent.authorization.startswith(f"AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/")
        assert "/eu-west-1/ecr/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, " \
               "Signature=" in sent.authorization
    with fake.recording() as seen:  # the registry's own requests never carry the AWS signature
        client.resolve(repository, "base")
    assert [s.authorization for s in seen] == [None]


def test_ecr_sends_the_session_token_and_the_account_of_an_ecr_registry_host(
        plain_registry: RunningRegistry, filled: dict[str, dict[str, str]], fakes: dict[str, ListingFake],
        open_client: OpenClient, tmp_path: Path) -> None:
    repository = _repository(filled, "ecr")
    token = "session-" + secrets.token_hex(20)
    fake = _fake(fakes, plain_registry, "ecr", aws=(AWS_KEY_ID, AWS_SECRET, token))
    policy = _policy(fake, "ecr")
    assert policy.listing is not None
    with_token = replace(policy, listing=replace(policy.listing, credentials=_keys(
        token=SecretRef("env", env="AWS_SESSION_TOKEN"))))
    assert open_client(with_token, {"AWS_SESSION_TOKEN": token}).list_tags(repository).tags == filled[repository]
    with pytest.raises(RegistryError, match=r"UnrecognizedClientException, HTTP 400"):  # no token: refused
        open_client(policy).list_tags(repository)

    # registryId: the account of ACCOUNT.dkr.ecr.REGION.amazonaws.com; the url and region its API's.
    ecr = Registry("ecr", "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com", None,
                   ("123456789012.dkr.ecr.eu-west-1.amazonaws.com",),
                   listing=Listing("ecr", "https://api.ecr.eu-west-1.amazonaws.com", None, _keys()))
    listing = ListingClient(ecr, ecr.listing, Transport(ecr), Authenticator(ecr, None, Transport(ecr)))  # type: ignore[arg-type]
    assert (listing.region, listing.registry_id) == ("eu-west-1", "123456789012")
    assert json.loads(ECRAPI().body("team/app", listing.registry_id, "tok")) == {
        "repositoryName": "team/app", "registryId": "123456789012", "maxResults": 1000, "nextToken": "tok"}


def test_ecr_invalid_images_are_skipped(
        plain_registry: RunningRegistry, filled: dict[str, dict[str, str]], fakes: dict[str, ListingFake],
        open_client: OpenClient, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    repository = _repository(filled, "ecr")
    fake = _fake(fakes, plain_registry, "ecr")
    digest = filled[repository]["t001"]
    fake.extra = [{"imageDigest": "sha256:short", "imagePushedAt": 1793491200.0},  # untagged, no usable digest
                  {"imageDigest": digest, "imageTags": []}, "not an image",  # untagged, but a tag is listed on it
                  {"imageDigest": digest, "imageTags": ["-not a tag", 7]},
                  {"imageDigest": "sha256:short", "imageTags": ["base"]}, {"imageTags": ["t002"]}]
    with caplog.at_level(logging.WARNING), fake.recording() as seen:
        state = observe_repository(open_client(_policy(fake, "ecr"), cache_dir=tmp_path / "c"), repository)
    assert {tag: d.digest for tag, d in state.tags.items()} == filled[repository]
    assert sorted(s.path.rsplit("/", 1)[1] for s in _by_tag(seen)) == ["base", "t002"]
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "skipped 3 entries that are not valid OCI tags" in messages
    assert "2 tags without a valid digest (base, t002)" in messages
    assert "skipped 1 untagged entries without a valid digest" in messages
    assert state.untagged == frozenset()  # t001's digest is tagged


def test_ecr_a_repository_it_does_not_have_is_asked_on_the_distribution_api_and_access_denied_is_named(
        plain_registry: RunningRegistry, filled: dict[str, dict[str, str]], fakes: dict[str, ListingFake],
        open_client: OpenClient) -> None:
    fake = _fake(fakes, plain_registry, "ecr")
    client = open_client(_policy(fake, "ecr"))
    with fake.recording() as seen:
        assert client.list_tags("nowhere/none") is None  # RepositoryNotFoundException: like a 404
    assert len(seen) == 1
    repository = _repository(filled, "ecr")
    fake.denied = {repository}
    with pytest.raises(RegistryError) as raised:
        client.list_tags(repository)
    assert str(raised.value) == (
        f"registry hub, repository {repository}: list tags with digests (ecr API): access denied "
        "(AccessDeniedException, HTTP 400): the IAM identity of spec.listing.credentials (accessKeyId (as written), "
        f"secretAccessKey file:{AWS_SECRET_FILE}) may not ecr:DescribeImages on this repository")
    assert raised.value.status == 403 and "arn:aws" not in str(raised.value)


def test_ecr_a_bad_signature_fails_naming_the_references_and_never_the_secret(
        plain_registry: RunningRegistry, filled: dict[str, dict[str, str]], fakes: dict[str, ListingFake],
        open_client: OpenClient, caplog: pytest.LogCaptureFixture) -> None:
    repository = _repository(filled, "ecr")
    fake = _fake(fakes, plain_registry, "ecr")
    wrong = "wrong-secret-" + secrets.token_hex(12)
    policy = _policy(fake, "ecr")
    assert policy.listing is not None
    bad = replace(policy, listing=replace(policy.listing, credentials=_keys(SecretRef("env", env="AWS_SECRET"))))
    with caplog.at_level(logging.DEBUG), fake.recording() as seen, pytest.raises(RegistryError) as raised:
        open_client(bad, {"AWS_SECRET": wrong}).list_tags(repository)
    assert len(seen) == 1  # refused once: not retried
    message = str(raised.value)
    assert message == (
        f"registry hub, repository {repository}: list tags with digests (ecr API): authentication failed for ECR's "
        "API (InvalidSignatureException, HTTP 400): AWS refused the request's signature or access key; check the "
        "secret references spec.listing.credentials (accessKeyId (as written), secretAccessKey env:AWS_SECRET) "
        "(and this machine's clock)")
    assert raised.value.status == 401
    logged = caplog.text
    days = {s.authorization.split("/")[1] for s in seen if s.authorization}
    keys = {sigv4.signing_key(Secret(value), day, "eu-west-1", "ecr").hex() for value in (wrong, AWS_SECRET)
            for day in days}
    for text in (message, logged, repr(raised.value), str(raised.value.__context__), str(raised.value.__cause__)):
        assert wrong not in text and AWS_SECRET not in text
        assert not [key for key in keys if key in text]
        assert "Canonical String" not in text  # ECR's free text is not quoted
    assert raised.value.__cause__ is None

    unknown = replace(policy, listing=replace(policy.listing, credentials=AWSCredentialRefs(
        "AKIAUNKNOWNEXAMPLE00", SecretRef("file", path=str(AWS_SECRET_FILE)))))
    with pytest.raises(RegistryError, match=r"authentication failed for ECR's API \(UnrecognizedClientException, "
                                            r"HTTP 400\)"):
        open_client(unknown).list_tags(repository)


@pytest.mark.parametrize("status", [400, 429])
def test_ecr_throttling_backs_off_as_a_429_does(
        status: int, plain_registry: RunningRegistry, filled: dict[str, dict[str, str]],
        fakes: dict[str, ListingFake], open_client: OpenClient) -> None:
    repository = _repository(filled, "ecr")
    fake = _fake(fakes, plain_registry, "ecr")
    fake.throttle, fake.throttle_status = 2, status
    client = open_client(replace(_policy(fake, "ecr"), concurrency=8))
    with fake.recording() as seen:
        assert client.list_tags(repository).tags == filled[repository]
    assert len(seen) == 3 + 2  # two throttled, then three pages
    assert client._transport.concurrency.limit < 8  # type: ignore[attr-defined]  # halved, growing back
    fake.throttle = 100
    with pytest.raises(RegistryError, match=r"throttled by ECR \(ThrottlingException, HTTP 400\); gave up after "
                       if status == 400 else r"rate limited \(HTTP 429\); gave up after") as raised:
        client.list_tags(repository)
    assert raised.value.status == 429 and raised.value.retryable


def test_ecr_credentials_are_signed_only_for_ecrs_api_or_an_allowed_endpoint(
        plain_registry: RunningRegistry, fakes: dict[str, ListingFake], open_client: OpenClient) -> None:
    fake = _fake(fakes, plain_registry, "ecr")
    policy = _policy(fake, "ecr")
    assert policy.listing is not None
    cases = [
        (replace(policy, allowed_hosts=(f"127.0.0.1:{fake.port}",)),
         f"localhost:{fake.port} is not ECR's API (https://api.ecr.REGION.amazonaws.com) nor in allowedHosts"),
        (replace(policy, listing=replace(policy.listing, url="http://api.ecr.eu-west-1.amazonaws.com")),
         "ECR's API is https"),
        (replace(policy, listing=replace(policy.listing, region=None)), "the AWS region to sign for cannot be told"),
        (replace(policy, listing=replace(policy.listing, credentials=None)), "an ecr listing needs"),
    ]
    for registry, message in cases:
        with fake.recording() as seen, pytest.raises(RegistryError, match=re.escape(message)):
            open_client(registry)
        assert not seen


def test_ecr_through_plan_and_apply_and_no_secret_in_the_plan_the_output_or_the_audit_trail(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, small: dict[str, str],
        fakes: dict[str, ListingFake], monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake(fakes, plain_registry, "ecr")
    hosts = f"allowedHosts: ['127.0.0.1:{fake.port}', 'localhost:{fake.port}']"
    listing = (f", {hosts}, listing: {{api: ecr, url: '{fake.other_url}', region: eu-west-1, credentials: "
               f"{{accessKeyId: {AWS_KEY_ID}, secretAccessKey: {{env: AWS_SECRET_ACCESS_KEY}}}}}}")
    with_listing = _policies(tmp_path / "with", fake.url, repo, listing)
    without = _policies(tmp_path / "without", fake.url, repo, "")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    plans = {}
    for name, root in (("with", with_listing), ("without", without)):
        monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / f"cache-{name}"))
        with fake.recording() as seen:
            result = _invoke("plan", "--repo", str(root), "--audit-db", str(tmp_path / "plan.db"), "--format", "json")
        assert result.exit_code == 0, result.output
        plans[name] = json.loads(result.stdout)
        assert [s.method for s in seen if s.listing] == (["POST"] if name == "with" else [])
    assert plans["with"]["actions"] == plans["without"]["actions"] and plans["with"]["actions"]

    # A wrong secret: the plan fails naming the reference; nothing anywhere holds either key.
    wrong = "wrong-" + secrets.token_hex(16)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache-wrong"))
    failed = _invoke("plan", "--repo", str(with_listing), "--audit-db", str(tmp_path / "plan.db"), "--format", "json")
    assert failed.exit_code == 1
    assert "authentication failed for ECR's API (InvalidSignatureException, HTTP 400)" in failed.output
    assert "secretAccessKey env:AWS_SECRET_ACCESS_KEY" in failed.output
    db = tmp_path / "apply.db"
    refused = _invoke("apply", "--repo", str(with_listing), "--audit-db", str(db))
    assert refused.exit_code != 0
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    applied = _invoke("apply", "--repo", str(with_listing), "--audit-db", str(db))
    assert applied.exit_code == 0, applied.output
    assert _tags(fake, repo) == ["v1", "v2"]
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("*.db*"))
    for text in (failed.output, refused.output, applied.output, json.dumps(plans)):
        assert AWS_SECRET not in text and wrong not in text
    assert AWS_SECRET.encode() not in stored and wrong.encode() not in stored


# -- untagged manifests and push times ---------------------------------------------------------------
@dataclass
class Untagged:
    repository: str
    v1: Built  # tagged v1
    lone: Built  # an image on no tag
    index: Built  # an index on no tag, of two platform manifests on no tag
    amd64: Built
    arm64: Built

    def listed(self, *built: Built) -> list[tuple[str, str, int]]:
        return [(b.digest, b.media_type, len(b.data)) for b in built]


@pytest.fixture
def untagged(tmp_path: Path, plain_registry: RunningRegistry, repo: str) -> Untagged:
    """``repo``: v1, and manifests put by digest alone (on no tag): an image and an index of two."""
    layout = Layout(tmp_path / "untagged")
    v1 = layout.image(created="2026-11-01T00:00:00Z")
    layout.tag(v1, "v1")
    push(layout, "v1", plain_registry.host, repo)
    document = json.loads(v1.data)
    lone, amd64, arm64 = (layout.manifest({**document, "annotations": {"n": name}}, OCI_MANIFEST)
                          for name in ("lone", "amd64", "arm64"))
    index = layout.index([(amd64, "amd64"), (arm64, "arm64")])
    for built in (lone, amd64, arm64, index):
        put_tag(plain_registry.url, repo, built.digest, built)  # by digest: no tag
    return Untagged(repo, v1, lone, index, amd64, arm64)


@pytest.mark.parametrize("api", ["harbor", "ecr"])
def test_untagged_manifests_are_listed_read_by_digest_and_only_roots_reported(
        api: str, plain_registry: RunningRegistry, untagged: Untagged, fakes: dict[str, ListingFake],
        open_client: OpenClient, tmp_path: Path) -> None:
    u = untagged
    fake = _fake(fakes, plain_registry, api)
    # ECR lists an index's platform manifests as untagged images too; Harbor leaves them out (its
    # default base: tagged artifacts and untagged ones no index references).
    fake.untagged = u.listed(u.lone, u.index, *((u.amd64, u.arm64) if api == "ecr" else ()))
    fake.pushed = {u.lone.digest: 1793577600 if api == "ecr" else "2026-11-02T00:00:00.250+01:00"}
    client = open_client(_policy(fake, api), cache_dir=tmp_path / "cache")
    with fake.recording() as seen:
        state = observe_repository(client, u.repository)
    assert set(state.tags) == {"v1"}
    assert state.untagged == {u.lone.digest, u.index.digest}  # the platform manifests go with their index
    assert {u.lone.digest, u.index.digest, u.amd64.digest, u.arm64.digest} <= state.images.keys()
    assert [c.digest for c in state.images[u.index.digest].children] == [u.amd64.digest, u.arm64.digest]
    lone_time = datetime(2026, 11, 2, tzinfo=UTC) if api == "ecr" else datetime(2026, 11, 1, 23, 0, 0, 250000, UTC)
    assert state.pushed[u.lone.digest] == lone_time
    assert state.pushed[u.v1.digest] == state.pushed[u.index.digest] != lone_time
    # One page; each untagged manifest fetched once, by digest (then cached).
    assert len([s for s in seen if s.listing]) == 1 and not _by_tag(seen)
    for built in (u.lone, u.index, u.amd64, u.arm64):
        assert [s.method for s in seen if s.path == f"/v2/{u.repository}/manifests/{built.digest}"] == ["GET"]
    with fake.recording() as warm:
        assert observe_repository(client, u.repository) == state
    assert not [s for s in warm if "/manifests/" in s.path]

    # The Distribution API alone cannot tell them: none, and no push times.
    plain = observe_repository(open_client(_policy(fake, None), cache_dir=tmp_path / "plain"), u.repository)
    assert (plain.untagged, dict(plain.pushed), set(plain.tags)) == (frozenset(), {}, {"v1"})


@pytest.mark.parametrize("api", ["gitlab", "dockerhub"])
def test_tag_listings_report_no_untagged_and_a_digests_latest_tag_push_time(
        api: str, plain_registry: RunningRegistry, untagged: Untagged, fakes: dict[str, ListingFake],
        open_client: OpenClient, tmp_path: Path) -> None:
    u = untagged
    put_tag(plain_registry.url, u.repository, "also-v1", u.v1)
    put_tag(plain_registry.url, u.repository, "lone", u.lone)
    fake = _fake(fakes, plain_registry, api)
    fake.untagged = u.listed(u.index)  # (not listed by these APIs: they list tags)
    fake.tag_pushed = {"also-v1": "2026-11-20T10:00:00Z", "v1": "2026-11-03T00:00:00Z", "lone": "not a time"}
    state = observe_repository(open_client(_policy(fake, api), cache_dir=tmp_path / "c"), u.repository)
    assert state.untagged == frozenset()
    assert dict(state.pushed) == {u.v1.digest: datetime(2026, 11, 20, 10, tzinfo=UTC)}  # the later of its two tags


@pytest.mark.parametrize("api", ["harbor", "ecr"])
def test_a_listed_untagged_manifest_the_registry_does_not_have_fails_the_observation(
        api: str, plain_registry: RunningRegistry, untagged: Untagged, fakes: dict[str, ListingFake],
        open_client: OpenClient) -> None:
    fake = _fake(fakes, plain_registry, api)
    wrong = "sha256:" + "0" * 64
    fake.untagged = [*untagged.listed(untagged.lone), (wrong, OCI_MANIFEST, 500)]
    with pytest.raises(RegistryError, match=rf"listing says {wrong} is an untagged manifest of this repository, "
                                            "which the registry does not have") as raised:
        observe_repository(open_client(_policy(fake, api)), untagged.repository)
    assert raised.value.status == 404


@pytest.mark.parametrize("api", ["harbor", "ecr"])
def test_push_times_that_are_not_times_are_ignored_never_a_crash(
        api: str, plain_registry: RunningRegistry, untagged: Untagged, fakes: dict[str, ListingFake],
        open_client: OpenClient, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    u = untagged
    fake = _fake(fakes, plain_registry, api)
    fake.untagged = u.listed(u.lone, u.index)
    bad: dict[str, Any] = {
        "ecr": {u.v1.digest: "1793491200", u.lone.digest: -5, u.index.digest: float("nan")},
        "harbor": {u.v1.digest: "0001-01-01T00:00:00.000Z", u.lone.digest: "2026-11-01T00:00:00",
                   u.index.digest: 1793491200},
    }
    fake.pushed = bad[api]
    with caplog.at_level(logging.WARNING):
        state = observe_repository(open_client(_policy(fake, api), cache_dir=tmp_path / "c"), u.repository)
    assert dict(state.pushed) == {} and state.untagged == {u.lone.digest, u.index.digest}
    assert "ignored 3 push times that are not valid times" in caplog.text
    others = [float("inf"), 1e300, 10 ** 40, True, [], 4102444800] if api == "ecr" else [
        "2026-11-01", "2026-11-01T00:00:00+24:00", "9999-12-31T23:59:59-23:59", "x" * 100]
    for value in others:
        fake.pushed = {u.v1.digest: value}
        pushed = observe_repository(open_client(_policy(fake, api), cache_dir=tmp_path / "c"), u.repository).pushed
        assert u.v1.digest not in pushed and u.lone.digest in pushed, value


def test_push_times_are_read_strictly() -> None:
    assert epoch_time(1793491200.5) == datetime(2026, 11, 1, 0, 0, 0, 500000, UTC)
    assert epoch_time(1793491200) == datetime(2026, 11, 1, tzinfo=UTC)
    for value in ("1793491200", -1, 0, float("nan"), float("inf"), float("-inf"), 1e300, 10 ** 400, True, None,
                  946684799, 4102444800):
        assert epoch_time(value) is None, value
    assert rfc3339_time("2026-11-01T00:00:00Z") == datetime(2026, 11, 1, tzinfo=UTC)
    assert rfc3339_time("2026-11-01t01:30:00.123456789+01:30") == datetime(2026, 11, 1, 0, 0, 0, 123456, UTC)
    for text in ("2026-11-01T00:00:00", "2026-11-01", "0001-01-01T00:00:00.000Z", "2026-13-01T00:00:00Z",
                 "2026-11-01T25:00:00Z", "yesterday", " 2026-11-01T00:00:00Z", "2026-11-01T00:00:00Z\n",
                 "2026-11-01T00:00:00+24:00", "9999-12-31T23:59:59-23:59", 1793491200, None):
        assert rfc3339_time(text) is None, text

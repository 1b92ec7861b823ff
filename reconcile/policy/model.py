"""The policies as typed, immutable objects: what the planner and adapters consume.

Built only from documents that passed every check, so constructors here trust their input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from reconcile.policy import urls
from reconcile.policy.documents import Document
from reconcile.policy.durations import parse_duration
from reconcile.policy.patterns import Pattern, compile_pattern
from reconcile.policy.secrets import SecretRef
from reconcile.policy.semver import SemverRange

TagOrder = Literal["semver", "numeric", "alphabetical", "newest"]
# Which pre-release versions a semver range admits (reconcile.policy.semver): npm's rule, the
# default, or Masterminds/semver's (Flux, Argo CD Image Updater, Kargo).
PrereleaseRule = Literal["npm", "masterminds"]
# How a registry deletes (Registry spec.deletion): by manifest digest only (every tag on it goes
# too), also a tag on its own (OCI 1.1), or not at all.
Deletion = Literal["manifest", "tag", "none"]
# A registry's own API that lists tags with their digests in pages (Registry spec.listing).
ListingAPI = Literal["harbor", "gitlab", "dockerhub", "ecr"]
LISTING_URLS: Mapping[str, str] = MappingProxyType({"dockerhub": "https://hub.docker.com"})  # else the registry's url
# An ECR registry's host (ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn]) and its API's.
ECR_REGISTRY_HOST = re.compile(r"^(?P<account>[0-9]{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]+)"
                               r"\.amazonaws\.com(?P<china>\.cn)?$")
ECR_API_HOST = re.compile(r"^api\.ecr(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]+)\.amazonaws\.com(?:\.cn)?$")


@dataclass(frozen=True)
class Origin:
    """Where a document was defined, for messages and `explain`."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Credentials:
    """Secret references only; resolved by whoever sends them, at the moment of use."""

    username: str | SecretRef | None = None
    password: SecretRef | None = None
    token: SecretRef | None = None
    docker_config: SecretRef | None = None


@dataclass(frozen=True)
class RateLimit:
    requests_per_second: float
    burst: int = 1


@dataclass(frozen=True)
class Retry:
    attempts: int = 5  # in all, the first included
    budget: timedelta = timedelta(seconds=60)  # of waiting between the attempts of one request


@dataclass(frozen=True)
class Listing:
    """Registry ``spec.listing``: tags and their digests read from the registry's own API, a page
    of 100 tags (ECR: 1,000 images) per request, instead of a request per tag. The digests are checked against the
    manifests they name; deletes are re-verified on the Distribution API whatever the listing said."""

    api: ListingAPI
    url: str  # https://HOST[:PORT], no path: where the API is (default: LISTING_URLS, else the registry's url)
    region: str | None = None  # ecr: the AWS region signed for (default: the url's, else the registry host's)
    credentials: AWSCredentialRefs | None = None  # ecr: what DescribeImages is signed with


@dataclass(frozen=True)
class AWSCredentialRefs:
    """Registry ``spec.listing.credentials`` of an ``ecr`` listing: an IAM access key by reference
    (the id may be plain: it is not a secret), and a session token for temporary credentials."""

    access_key_id: str | SecretRef
    secret_access_key: SecretRef
    session_token: SecretRef | None = None


MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """How much a registry may send (Registry ``spec.limits``): response bodies by kind, pages of
    a list, and deadlines of a whole request (connect, every retry and all of the body)."""

    manifest_bytes: int = 4 * MiB  # the distribution spec's suggestion; also a referrers index
    config_bytes: int = 16 * MiB  # an image config
    list_page_bytes: int = 16 * MiB  # one page of a tag list or catalog
    token_bytes: int = 1 * MiB  # a token endpoint's answer
    error_body_bytes: int = 64 * 1024  # read for error codes; the rest is never read
    max_pages: int = 10_000  # of one tag list or catalog
    request_deadline: timedelta = timedelta(minutes=5)  # any request but a blob's
    blob_deadline: timedelta = timedelta(hours=1)  # one blob download or upload
    phase_deadline: timedelta = timedelta(hours=3)  # every request of a run phase, from the client's opening


@dataclass(frozen=True)
class Registry:
    name: str
    url: str
    credentials: Credentials | None
    allowed_hosts: tuple[str, ...]  # HOST or HOST:PORT; defaults to the url's own host
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    concurrency: int = 16  # measured: bench/plan_bench.py, 20 ms round trip, 2 CPUs
    rate_limit: RateLimit | None = None
    timeout: timedelta = timedelta(seconds=30)
    origin: Origin | None = field(default=None, compare=False)
    retry: Retry = Retry()
    deletion: Deletion | None = None  # spec.deletion as written; None: the default, see deletion_mode
    limits: Limits | None = None  # spec.limits as written; None: every default (see limits_or_default)
    listing: Listing | None = None  # spec.listing; None: tags resolved one request each (the Distribution API)

    @property
    def limits_or_default(self) -> Limits:
        return self.limits if self.limits is not None else Limits()

    @property
    def is_layout(self) -> bool:
        return self.url.startswith("oci-layout:")

    @property
    def deletion_mode(self) -> Deletion:
        """How this registry deletes, as declared (never probed): ``spec.deletion``, else ``tag``
        for an OCI layout (reconcile edits its index.json itself) and ``manifest`` otherwise."""
        if self.deletion is not None:
            return self.deletion
        return "tag" if self.is_layout else "manifest"

    @property
    def layout_path(self) -> str | None:
        return self.url.removeprefix("oci-layout:") if self.is_layout else None

    def may_receive_credentials(self, url: str) -> bool:
        """Whether a request to ``url`` may carry this registry's credentials: its exact normalised
        host and port is allowed (a host listed without a port matches only the scheme's default
        port), and it is not plain http when the registry is https (``reconcile.policy.urls``)."""
        return urls.may_receive_credentials(url, self.allowed_hosts, self.url)


@dataclass(frozen=True)
class ManifestsSource:
    """A git repository (or plain directory) of Kubernetes manifests."""

    repo: str
    path: str
    branch: str | None = None


@dataclass(frozen=True)
class Cluster:
    name: str
    in_cluster: bool
    kubeconfig: SecretRef | None
    context: str | None = None
    manifests: ManifestsSource | None = None  # known by what a GitOps repository says it runs
    include_namespaces: tuple[str, ...] = ()
    exclude_namespaces: tuple[str, ...] = ()
    timeout: timedelta = timedelta(seconds=30)
    origin: Origin | None = field(default=None, compare=False)


@dataclass(frozen=True)
class GitRefsLimit:
    """werf's ``last``/``in``/``operator`` triple, for ``gitRefs.limit`` (which references count)
    and ``gitRefs.imagesPerReference`` (how many images of each): the last N, those within
    ``within`` (werf's ``in``), or both (And) or either (Or). ``last`` None: no count limit."""

    last: int | None = None
    within: timedelta | None = None
    operator: Literal["And", "Or"] = "And"


@dataclass(frozen=True)
class GitRefs:
    repo: str
    branches: Pattern | None
    tags: Pattern | None
    commits_per_branch: int = 1
    tag_commit: Pattern | None = None
    revision_label: bool = False
    # werf's imagesPerReference: count images, not commits (instead of commits_per_branch); last defaults to 1
    images_per_reference: GitRefsLimit | None = None
    limit: GitRefsLimit | None = None  # werf's references.limit: only the last N refs by head date, and/or recent


@dataclass(frozen=True)
class KeepRule:
    """Selectors (tags, semver) choose tags; limits (last, newer_than) keep some of them."""

    tags: Pattern | None = None
    semver: SemverRange | None = None
    last: int | None = None
    order: TagOrder | None = None  # None: each kind (versions, numbers, other tags) ranks among its own
    newer_than: timedelta | None = None
    operator: Literal["And", "Or"] = "And"
    git_refs: GitRefs | None = None
    strict_semver: bool = True  # False: 1 and 1.2 are versions too (1.0.0, 1.2.0), as Kargo's strictSemvers: false
    descending: bool = False  # True: the order reversed, 'last' keeps the N lowest (Flux's order: desc)
    tag_status: Literal["tagged", "untagged", "any"] = "tagged"  # which images it selects (ECR's tagStatus)
    count: Literal["tags", "images"] = "tags"  # what 'last' counts: tags, or images (all their tags together)
    age: Literal["created", "pushed"] = "created"  # the time newerThan and order newest look at
    priority: int | None = None  # keepMode firstMatch: lower decides first (ECR's rulePriority); else list order
    with_tags: tuple[Pattern, ...] = ()  # an image is selected only if each pattern matches one of its tags


@dataclass(frozen=True)
class Protection:
    in_use: tuple[str, ...] = ()
    deployed_history: int = 0
    helm_releases: tuple[str, ...] = ()


@dataclass(frozen=True)
class RetentionPolicy:
    name: str
    registry: str
    repositories: tuple[str, ...]
    keep: tuple[KeepRule, ...]
    protect: Protection = Protection()
    max_deletions: int = 100
    origin: Origin | None = field(default=None, compare=False)
    keep_mode: Literal["union", "firstMatch"] = "union"  # firstMatch: the first rule selecting an image decides
    untag_others: bool = False  # True: a kept image loses the tags no rule keeps (tag-level retention)
    untagged: Literal["keep", "prune"] = "keep"  # prune: untagged manifests no rule keeps are deleted

    def rules_in_order(self) -> list[tuple[int, KeepRule]]:
        """(index, rule) in the order rules decide: by priority under firstMatch (lower first,
        then list order), else list order."""
        ranked = list(enumerate(self.keep))
        if self.keep_mode == "firstMatch":
            ranked.sort(key=lambda pair: (pair[1].priority is None, pair[1].priority or 0, pair[0]))
        return ranked


_LITERAL_TAG = re.compile(r"\^([A-Za-z0-9_][A-Za-z0-9_-]{0,127})\$")  # no regex syntax between the anchors


@dataclass(frozen=True)
class Track:
    tags: Pattern
    order: TagOrder = "semver"
    allow: Pattern | None = None
    ignore: Pattern | None = None
    semver: SemverRange | None = None  # only versions within this range are candidates (order semver)
    strict_semver: bool = True  # False: 1 and 1.2 are versions too, as Kargo's strictSemvers: false
    descending: bool = False  # True: the lowest candidate wins (Flux's order: desc)

    @property
    def follows(self) -> str | None:
        """The one tag a track of a literal name (``^latest$``, ``^stable$``) follows: nothing to
        rank, so its order does not apply; it moves when that tag points at another digest."""
        literal = _LITERAL_TAG.fullmatch(self.tags.pattern)
        return literal[1] if literal else None


@dataclass(frozen=True)
class DateRangeFreeze:
    start: datetime
    end: datetime  # exclusive
    reason: str | None = None


@dataclass(frozen=True)
class WeeklyFreeze:
    days: tuple[str, ...]  # Mon..Sun
    start: time
    end: time  # exclusive; before start means the window runs past midnight
    time_zone: str = "UTC"
    reason: str | None = None


FreezeWindow = DateRangeFreeze | WeeklyFreeze


@dataclass(frozen=True)
class Gates:
    soak: timedelta | None = None
    healthy_in: tuple[str, ...] = ()
    approval: str | None = None
    freeze: tuple[FreezeWindow, ...] = ()


@dataclass(frozen=True)
class Stage:
    name: str
    registry: str
    repository: str
    source: str | None = None  # the stage it promotes from ('from'); None for the tracking stage
    track: Track | None = None
    tags: tuple[str, ...] = ()
    gates: Gates = Gates()


@dataclass(frozen=True)
class PromotionPolicy:
    name: str
    stages: tuple[Stage, ...]  # in pipeline order: the tracking stage first
    origin: Origin | None = field(default=None, compare=False)

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


@dataclass(frozen=True)
class Approval:
    """One entry of an approval file in the repo-of-record: a digest or a version, approved by someone."""

    approved_by: str
    digest: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class Workload:
    kind: Literal["Deployment", "StatefulSet", "DaemonSet", "CronJob"]
    name: str
    container: str


@dataclass(frozen=True)
class ManifestsTarget:
    repo: str
    path: str
    branch: str = "main"
    pull_request: bool = False


@dataclass(frozen=True)
class HerokuTarget:
    """Release through the Heroku Platform API: ``PATCH {api}/apps/{app}/formation``."""

    app: str
    token: SecretRef
    process: str = "web"
    api: str = "https://api.heroku.com"


@dataclass(frozen=True)
class Rollout:
    timeout: timedelta = timedelta(minutes=10)
    auto_rollback: bool = True


@dataclass(frozen=True)
class DeployPolicy:
    name: str
    promotion: str  # PromotionPolicy name
    stage: str  # stage name in it
    workloads: tuple[Workload, ...]
    cluster: str | None = None
    manifests: ManifestsTarget | None = None
    namespace: str | None = None
    rollout: Rollout = Rollout()
    heroku: HerokuTarget | None = None
    origin: Origin | None = field(default=None, compare=False)


NotifyOn = Literal["always", "change", "failure", "blocked"]


@dataclass(frozen=True)
class Webhook:
    """A signed CloudEvents webhook (Notification ``spec.webhook``): the URL plain or by reference,
    the HMAC key by reference."""

    url: str | SecretRef
    secret: SecretRef
    attempts: int = 3
    timeout: timedelta = timedelta(seconds=10)


@dataclass(frozen=True)
class Notification:
    """Who hears about a recorded apply or run, and when (``on``); every target is a secret
    reference (apprise URLs carry tokens) or a plain webhook URL."""

    name: str
    when: tuple[NotifyOn, ...]
    apprise: tuple[SecretRef, ...] = ()
    webhook: Webhook | None = None
    origin: Origin | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ConnectionChange:
    """A Registry or Cluster the ref read defines otherwise than the trusted ref does: shown for
    review, never connected with (see reconcile.policy.trust). ``details`` name secret references,
    never a secret."""

    kind: Literal["Registry", "Cluster", "Notification"]
    name: str
    change: Literal["added", "removed", "changed"]
    details: tuple[str, ...]
    used: str  # what reconcile connects with instead, or that it does not connect at all


@dataclass(frozen=True)
class PolicySet:
    """Everything the repo-of-record says, as of one commit."""

    source: str
    commit: str | None  # None when read from a plain directory
    registries: Mapping[str, Registry] = field(default_factory=dict)
    clusters: Mapping[str, Cluster] = field(default_factory=dict)
    retention_policies: Mapping[str, RetentionPolicy] = field(default_factory=dict)
    promotion_policies: Mapping[str, PromotionPolicy] = field(default_factory=dict)
    deploy_policies: Mapping[str, DeployPolicy] = field(default_factory=dict)
    notifications: Mapping[str, Notification] = field(default_factory=dict)  # from the trusted ref, as connections
    # Set when the connections (Registry, Cluster) come from another commit than the policies:
    trusted_ref: str | None = None  # the ref they come from, and its commit
    trusted_commit: str | None = None
    connection_changes: tuple[ConnectionChange, ...] = ()
    unconnectable: Mapping[str, str] = field(default_factory=dict)  # "Registry/x" -> why it is not connected to

    def counts(self) -> dict[str, int]:
        return {"Registry": len(self.registries), "Cluster": len(self.clusters),
                "RetentionPolicy": len(self.retention_policies),
                "PromotionPolicy": len(self.promotion_policies),
                "DeployPolicy": len(self.deploy_policies),
                **({"Notification": len(self.notifications)} if self.notifications else {})}


def build_policy_set(source: str, commit: str | None, documents: list[Document]) -> PolicySet:
    """Typed objects from documents that passed every check."""
    built: dict[str, dict[str, Any]] = {kind: {} for kind in _BUILDERS}
    for document in documents:
        origin = Origin(document.path, document.line)
        kind, name, spec = document.kind, document.name, document.body["spec"]
        if kind is None or name is None:
            raise ValueError(f"{document.path}:{document.line}: a document without a kind or name passed the checks")
        built[kind][name] = _BUILDERS[kind](name, spec, origin)

    def by_name(kind: str) -> Mapping[str, Any]:
        return MappingProxyType(dict(sorted(built[kind].items())))

    return PolicySet(
        source=source, commit=commit, registries=by_name("Registry"), clusters=by_name("Cluster"),
        retention_policies=by_name("RetentionPolicy"), promotion_policies=by_name("PromotionPolicy"),
        deploy_policies=by_name("DeployPolicy"), notifications=by_name("Notification"))


def _duration(value: str | None) -> timedelta | None:
    return parse_duration(value) if value is not None else None


def _duration_or(value: str | None, default: timedelta) -> timedelta:
    return parse_duration(value) if value is not None else default


def _pattern(value: str | None) -> Pattern | None:
    return compile_pattern(value) if value is not None else None


def _secret(value: Any) -> SecretRef | None:
    return SecretRef.from_mapping(value) if isinstance(value, dict) else None


def _registry(name: str, spec: dict[str, Any], origin: Origin) -> Registry:
    raw = spec.get("credentials")
    credentials = None
    if raw is not None:
        username = raw.get("username")
        credentials = Credentials(
            username=_secret(username) if isinstance(username, dict) else username,
            password=_secret(raw.get("password")), token=_secret(raw.get("token")),
            docker_config=SecretRef.from_mapping({"dockerConfig": raw["dockerConfig"]})
            if "dockerConfig" in raw else None)
    url = spec["url"]
    own = [urlsplit(url).netloc.lower()] if url.startswith(("http://", "https://")) else []
    tls = spec.get("tls", {})
    rate = spec.get("rateLimit")
    retry = spec.get("retry", {})
    return Registry(
        name=name, url=url.rstrip("/"), credentials=credentials,
        allowed_hosts=tuple(spec.get("allowedHosts", own)),
        ca_file=tls.get("caFile"), insecure_skip_verify=tls.get("insecureSkipVerify", Registry.insecure_skip_verify),
        concurrency=spec.get("concurrency", Registry.concurrency),
        rate_limit=RateLimit(rate["requestsPerSecond"], rate.get("burst", RateLimit.burst)) if rate else None,
        timeout=_duration_or(spec.get("timeout"), Registry.timeout), origin=origin,
        retry=Retry(retry.get("attempts", Retry.attempts), _duration_or(retry.get("budget"), Retry.budget)),
        deletion=spec.get("deletion"), limits=_limits(spec.get("limits")),
        listing=_listing(spec.get("listing"), url.rstrip("/")))


def _listing(raw: dict[str, Any] | None, registry_url: str) -> Listing | None:
    if raw is None:
        return None
    api = raw["api"]
    url = str(raw.get("url") or LISTING_URLS.get(api) or (ecr_api_url(registry_url) if api == "ecr" else None)
              or registry_url).rstrip("/")
    keys = raw.get("credentials")
    credentials = None
    if isinstance(keys, dict):
        key_id = keys["accessKeyId"]
        credentials = AWSCredentialRefs(
            access_key_id=SecretRef.from_mapping(key_id) if isinstance(key_id, dict) else key_id,
            secret_access_key=SecretRef.from_mapping(keys["secretAccessKey"]),
            session_token=_secret(keys.get("sessionToken")))
    return Listing(api=api, url=url, region=raw.get("region"), credentials=credentials)


def ecr_api_url(registry_url: str) -> str | None:
    """``https://api.ecr.REGION.amazonaws.com[.cn]`` for an ECR registry's url, else None."""
    match = ECR_REGISTRY_HOST.match(urlsplit(registry_url).netloc.lower()) \
        if registry_url.startswith("https://") else None
    if match is None:
        return None
    fips = "-fips" if ".dkr.ecr-fips." in registry_url.lower() else ""
    return f"https://api.ecr{fips}.{match['region']}.amazonaws.com{match['china'] or ''}"


def ecr_region(listing: Listing, registry_url: str) -> str | None:
    """The region an ``ecr`` listing signs for: ``region``, else its url's, else the registry host's."""
    if listing.region:
        return listing.region
    for url, pattern in ((listing.url, ECR_API_HOST), (registry_url, ECR_REGISTRY_HOST)):
        match = pattern.match(urlsplit(url).hostname or "") if "://" in url else None
        if match is not None:
            return match["region"]
    return None


def _limits(raw: dict[str, Any] | None) -> Limits | None:
    if raw is None:
        return None
    return Limits(
        manifest_bytes=raw.get("manifestBytes", Limits.manifest_bytes),
        config_bytes=raw.get("configBytes", Limits.config_bytes),
        list_page_bytes=raw.get("listPageBytes", Limits.list_page_bytes),
        token_bytes=raw.get("tokenBytes", Limits.token_bytes),
        error_body_bytes=raw.get("errorBodyBytes", Limits.error_body_bytes),
        max_pages=raw.get("maxPages", Limits.max_pages),
        request_deadline=_duration_or(raw.get("requestDeadline"), Limits.request_deadline),
        blob_deadline=_duration_or(raw.get("blobDeadline"), Limits.blob_deadline),
        phase_deadline=_duration_or(raw.get("phaseDeadline"), Limits.phase_deadline))


def _cluster(name: str, spec: dict[str, Any], origin: Origin) -> Cluster:
    namespaces = spec.get("namespaces", {})
    manifests = spec.get("manifests")
    return Cluster(
        name=name, in_cluster=spec.get("inCluster", False), kubeconfig=_secret(spec.get("kubeconfig")),
        context=spec.get("context"),
        manifests=ManifestsSource(manifests["repo"], manifests["path"], manifests.get("branch"))
        if manifests else None,
        include_namespaces=tuple(namespaces.get("include", ())),
        exclude_namespaces=tuple(namespaces.get("exclude", ())),
        timeout=_duration_or(spec.get("timeout"), Cluster.timeout), origin=origin)


def _git_refs_limit(raw: dict[str, Any] | None, last: int | None) -> GitRefsLimit | None:
    if raw is None:
        return None
    return GitRefsLimit(last=raw.get("last", last), within=_duration(raw.get("in")),
                        operator=raw.get("operator", GitRefsLimit.operator))


def _keep_rule(raw: dict[str, Any]) -> KeepRule:
    refs = raw.get("gitRefs")
    git_refs = None if refs is None else GitRefs(
        repo=refs["repo"], branches=_pattern(refs.get("branches")), tags=_pattern(refs.get("tags")),
        commits_per_branch=refs.get("commitsPerBranch", GitRefs.commits_per_branch),
        tag_commit=_pattern(refs.get("tagCommit")),
        revision_label=refs.get("revisionLabel", GitRefs.revision_label),
        images_per_reference=_git_refs_limit(refs.get("imagesPerReference"), 1),
        limit=_git_refs_limit(refs.get("limit"), None))
    return KeepRule(
        tags=_pattern(raw.get("tags")), semver=_range(raw),
        last=raw.get("last"), order=raw.get("order"), newer_than=_duration(raw.get("newerThan")),
        operator=raw.get("operator", "And"), git_refs=git_refs,
        strict_semver=raw.get("strictSemver", KeepRule.strict_semver),
        descending=raw.get("descending", KeepRule.descending),
        tag_status=raw.get("tagStatus", KeepRule.tag_status), count=raw.get("count", KeepRule.count),
        age=raw.get("age", KeepRule.age), priority=raw.get("priority"),
        with_tags=tuple(compile_pattern(p) for p in raw.get("withTags", ())))


def _range(raw: dict[str, Any]) -> SemverRange | None:
    """A rule's or track's ``semver`` range, read by its ``prereleases`` rule."""
    if "semver" not in raw:
        return None
    return SemverRange.parse(raw["semver"], prereleases=raw.get("prereleases", DEFAULT_PRERELEASES))


DEFAULT_PRERELEASES: PrereleaseRule = "npm"


def _retention(name: str, spec: dict[str, Any], origin: Origin) -> RetentionPolicy:
    protect = spec.get("protect", {})
    return RetentionPolicy(
        name=name, registry=spec["registry"], repositories=tuple(spec["repositories"]),
        keep=tuple(_keep_rule(rule) for rule in spec["keep"]),
        protect=Protection(in_use=tuple(protect.get("inUse", ())),
                           deployed_history=protect.get("deployedHistory", Protection.deployed_history),
                           helm_releases=tuple(protect.get("helmReleases", ()))),
        max_deletions=spec.get("maxDeletions", RetentionPolicy.max_deletions), origin=origin,
        keep_mode=spec.get("keepMode", RetentionPolicy.keep_mode),
        untag_others=spec.get("untagOthers", RetentionPolicy.untag_others),
        untagged=spec.get("untagged", RetentionPolicy.untagged))


def _freeze(raw: dict[str, Any]) -> FreezeWindow:
    if "days" in raw:
        return WeeklyFreeze(days=tuple(raw["days"]), start=time.fromisoformat(raw["from"]),
                            end=time.fromisoformat(raw["until"]),
                            time_zone=raw.get("timeZone", "UTC"), reason=raw.get("reason"))
    return DateRangeFreeze(start=datetime.fromisoformat(raw["from"]),
                           end=datetime.fromisoformat(raw["until"]), reason=raw.get("reason"))


def _stage(raw: dict[str, Any]) -> Stage:
    track = raw.get("track")
    gates = raw.get("gates", {})
    return Stage(
        name=raw["name"], registry=raw["registry"], repository=raw["repository"],
        source=raw.get("from"),
        track=None if track is None else Track(
            tags=compile_pattern(track["tags"]), order=track.get("order", "semver"),
            allow=_pattern(track.get("allow")), ignore=_pattern(track.get("ignore")), semver=_range(track),
            strict_semver=track.get("strictSemver", Track.strict_semver),
            descending=track.get("descending", Track.descending)),
        tags=tuple(raw.get("tags", ())),
        gates=Gates(soak=_duration(gates.get("soak")), healthy_in=tuple(gates.get("healthyIn", ())),
                    approval=gates.get("approval"),
                    freeze=tuple(_freeze(w) for w in gates.get("freeze", ()))))


def _promotion(name: str, spec: dict[str, Any], origin: Origin) -> PromotionPolicy:
    stages = {raw["name"]: _stage(raw) for raw in spec["stages"]}
    ordered = [s for s in stages.values() if s.track is not None]
    while len(ordered) < len(stages):  # checks guarantee one tree rooted at the tracking stage
        done = {s.name for s in ordered}
        ordered += [s for s in stages.values() if s.name not in done and s.source in done]
    return PromotionPolicy(name=name, stages=tuple(ordered), origin=origin)


def _deploy(name: str, spec: dict[str, Any], origin: Origin) -> DeployPolicy:
    promotion, stage = spec["stage"].split("/")
    manifests = spec.get("manifests")
    heroku = spec.get("heroku")
    rollout = spec.get("rollout", {})
    return DeployPolicy(
        name=name, promotion=promotion, stage=stage,
        workloads=tuple(Workload(w["kind"], w["name"], w["container"]) for w in spec.get("workloads", ())),
        cluster=spec.get("cluster"),
        manifests=None if manifests is None else ManifestsTarget(
            repo=manifests["repo"], path=manifests["path"], branch=manifests.get("branch", ManifestsTarget.branch),
            pull_request=manifests.get("pullRequest", ManifestsTarget.pull_request)),
        namespace=spec.get("namespace"),
        rollout=Rollout(timeout=_duration_or(rollout.get("timeout"), Rollout.timeout),
                        auto_rollback=rollout.get("autoRollback", Rollout.auto_rollback)),
        heroku=None if heroku is None else HerokuTarget(
            app=heroku["app"], token=SecretRef.from_mapping(heroku["token"]),
            process=heroku.get("process", HerokuTarget.process), api=heroku.get("api", HerokuTarget.api)),
        origin=origin)


def _notification(name: str, spec: dict[str, Any], origin: Origin) -> Notification:
    raw = spec.get("webhook")
    webhook = None if raw is None else Webhook(
        url=raw["url"] if isinstance(raw["url"], str) else SecretRef.from_mapping(raw["url"]),
        secret=SecretRef.from_mapping(raw["secret"]), attempts=raw.get("attempts", Webhook.attempts),
        timeout=_duration_or(raw.get("timeout"), Webhook.timeout))
    return Notification(name=name, when=tuple(spec["when"]),
                        apprise=tuple(SecretRef.from_mapping(ref) for ref in spec.get("apprise", ())),
                        webhook=webhook, origin=origin)


_BUILDERS = {"Registry": _registry, "Cluster": _cluster, "RetentionPolicy": _retention,
             "PromotionPolicy": _promotion, "DeployPolicy": _deploy, "Notification": _notification}


def registry_host(registry: Registry) -> str:
    """host[:port] as image references in clusters name it ('' for a layout directory)."""
    return urlsplit(registry.url).netloc.lower() if not registry.is_layout else ""

"""Checks across documents and of meaning, beyond what a schema can say: duplicate names,
references to unknown registries/clusters/stages/policies, pipeline cycles and unreachable
stages, exclusive fields, time zones, tag templates, git repository URLs.

They run on raw documents (even ones the schema refused) so one run reports everything; every
lookup is shape-tolerant and a field the schema already flagged is skipped, not reported twice.
"""

from __future__ import annotations

import difflib
import ipaddress
import posixpath
import re
import string
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reconcile.policy import patterns
from reconcile.policy.documents import Document
from reconcile.policy.model import ECR_API_HOST, ECR_REGISTRY_HOST, ecr_api_url
from reconcile.policy.ordering import unrankable_pattern
from reconcile.policy.problems import Problem
from reconcile.policy.schema import KINDS
from reconcile.policy.source import check_repository_url
from reconcile.policy.urls import URLError, may_receive_credentials, parse_host, parse_url, registry_url_problem

TAG_PLACEHOLDERS = ("version", "stage", "shortDigest")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # OCI distribution-spec tag grammar
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def dig(value: Any, *path: str | int) -> Any:
    """``value[path...]`` or None when the shape does not fit (the schema reports that)."""
    for key in path:
        if isinstance(key, str) and isinstance(value, dict):
            value = value.get(key)
        elif isinstance(key, int) and isinstance(value, list) and 0 <= key < len(value):
            value = value[key]
        else:
            return None
    return value


def items(value: Any) -> Iterator[tuple[int, Any]]:
    """Enumerate a list; nothing for anything else."""
    return enumerate(value) if isinstance(value, list) else iter(())


class _Index:
    """Documents by kind and name (the first one of each name)."""

    def __init__(self, documents: list[Document]):
        self.by_kind: dict[str, dict[str, Document]] = {kind: {} for kind in KINDS}
        for document in documents:
            if document.kind in self.by_kind and document.name is not None:
                self.by_kind[document.kind].setdefault(document.name, document)

    def known_by_manifests(self, cluster: Any) -> bool:
        document = self.by_kind["Cluster"].get(cluster) if isinstance(cluster, str) else None
        return document is not None and isinstance(dig(document.body, "spec", "manifests"), dict)

    def unknown(self, kind: str, name: Any) -> str | None:
        """Why ``name`` does not resolve to a ``kind`` document, or None when it does."""
        if not isinstance(name, str) or name in self.by_kind[kind]:
            return None
        return unknown_message(kind, name, self.by_kind[kind])


def unknown_message(kind: str, name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f"unknown {kind} {name!r}; did you mean {close[0]!r}?"
    listed = ", ".join(sorted(known)[:8]) or "none is defined"
    return f"unknown {kind} {name!r} (known: {listed})"


def check_documents(documents: list[Document]) -> list[Problem]:
    """Every cross-document and semantic problem of the repo-of-record."""
    index = _Index(documents)
    problems = list(_duplicates(documents, index))
    checks: dict[str, Callable[[Document, _Index], Iterator[tuple[str, ...]]]] = {  # pointer, message[, severity]
        "Registry": _registry, "Cluster": _cluster, "RetentionPolicy": _retention,
        "PromotionPolicy": _promotion, "DeployPolicy": _deploy, "Notification": _notification,
    }
    for document in documents:
        check = checks.get(document.kind or "")
        if check is None or not isinstance(document.body, dict):
            continue
        for pointer, message, *severity in check(document, index):
            problems.append(Problem(document.path, document.line_of(pointer),
                                    f"{pointer}: {message}", document.subject,
                                    severity=severity[0] if severity else "error"))
    return problems


def _duplicates(documents: list[Document], index: _Index) -> Iterator[Problem]:
    for document in documents:
        first = index.by_kind.get(document.kind or "", {}).get(document.name or "")
        if first is not None and first is not document:
            yield Problem(document.path, document.line_of("/metadata/name"),
                          f"/metadata/name: duplicate {document.kind} name {document.name!r} "
                          f"(first defined at {first.path}:{first.line_of('/metadata/name')})",
                          document.subject)


def _registry(document: Document, index: _Index) -> Iterator[tuple[str, ...]]:
    spec = document.body.get("spec")
    url = dig(spec, "url")
    credentials = dig(spec, "credentials")
    if isinstance(url, str) and (problem := registry_url_problem(url)) is not None:
        yield "/spec/url", problem
    if isinstance(url, str) and url.startswith("http://"):
        host = urlsplit(url).hostname or ""
        if not _is_loopback(host):
            yield "/spec/url", (f"plain http is allowed only for loopback hosts (localhost, "
                                f"127.0.0.0/8, ::1), not {host!r}; use https://")
    if isinstance(credentials, dict):
        fields = sorted(credentials)
        if isinstance(url, str) and url.startswith("oci-layout:"):
            yield "/spec/credentials", "an oci-layout directory takes no credentials"
        elif "dockerConfig" in fields and len(fields) > 1:
            yield "/spec/credentials", "dockerConfig supplies the credentials on its own; remove " \
                                       f"{', '.join(f for f in fields if f != 'dockerConfig')}"
        elif "token" in fields and len(fields) > 1:
            yield "/spec/credentials", "use token alone, or username with password"
        elif ("username" in fields) != ("password" in fields):
            missing = "password" if "username" in fields else "username"
            yield "/spec/credentials", f"username and password go together; add {missing}"
    allowed = dig(spec, "allowedHosts")
    if isinstance(allowed, list) and isinstance(url, str) and url.startswith(("http://", "https://")):
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        names = {host, parts.netloc.lower()}
        if credentials is not None and not names & {str(h).lower() for h in allowed} \
                and not may_receive_credentials(url, [h for h in allowed if isinstance(h, str)], url):
            yield "/spec/allowedHosts", (f"does not include the registry's own host "
                                         f"{parts.netloc!r}, so its credentials could never be used")
        listing_url = dig(spec, "listing", "url")
        yield from _portless_hosts(allowed, [url, *([listing_url] if isinstance(listing_url, str) else [])])
    if isinstance(dig(spec, "tls"), dict) and isinstance(url, str) and not url.startswith("https://"):
        yield "/spec/tls", "TLS options apply only to https:// registries"
    listing = dig(spec, "listing")
    if isinstance(listing, dict) and isinstance(url, str):
        if url.startswith("oci-layout:"):
            yield "/spec/listing", "an oci-layout directory has no listing API (its index.json is read whole)"
        at = listing.get("url")
        if isinstance(at, str):
            if (problem := registry_url_problem(at)) is not None:
                yield "/spec/listing/url", problem.replace("registry url", "listing url")
            elif at.startswith("http://") and not _is_loopback(urlsplit(at).hostname or ""):
                yield "/spec/listing/url", "plain http is allowed only for loopback hosts; use https://"
            elif url.startswith("https://") and at.startswith("http://"):
                yield "/spec/listing/url", "the registry is https, so its listing API must be too"
        own = [urlsplit(url).netloc] if url.startswith(("http://", "https://")) else []
        yield from _ecr_listing(listing, url, allowed if isinstance(allowed, list) else own)


def _portless_hosts(allowed: list[Any], urls: list[str]) -> Iterator[tuple[str, str, str]]:
    """A warning for each allowedHosts entry without a port that names the host of a url the
    Registry sends credentials to on another port: an entry without a port means the scheme's
    default port only (credentials go to exact host:port entries), so they are withheld there."""
    for index, entry in enumerate(allowed):
        if not isinstance(entry, str) or ("]:" in entry if entry.startswith("[") else ":" in entry):
            continue  # it has a port
        for target in urls:
            try:
                parsed = parse_url(target)
                host, port = parse_host(entry, parsed.scheme)
            except URLError:
                continue
            if host == parsed.host and port != parsed.port:
                yield (f"/spec/allowedHosts/{index}",
                       f"{entry!r} matches port {port} only (the scheme's default), so credentials are withheld "
                       f"from {parsed.authority}: write {parsed.authority!r}", "warning")
                break


def _ecr_listing(listing: dict[str, Any], url: str, allowed: list[Any] | None) -> Iterator[tuple[str, str]]:
    """An ecr listing: credentials required (and only there), a url that is ECR's API or an
    endpoint allowedHosts names, and a region to sign for."""
    api = listing.get("api")
    if api != "ecr":
        for key in ("credentials", "region"):
            if key in listing:
                yield f"/spec/listing/{key}", (f"only an ecr listing takes {key} (the {api} API uses the "
                                               "registry's spec.credentials)")
        return
    if not isinstance(listing.get("credentials"), dict):
        yield "/spec/listing/credentials", ("an ecr listing signs DescribeImages with an IAM access key: add "
                                            "credentials: {accessKeyId, secretAccessKey: SECRET_REF[, "
                                            "sessionToken: SECRET_REF]}")
    at = listing.get("url")
    region = listing.get("region")
    if not isinstance(at, str):
        if ecr_api_url(url) is None:
            yield "/spec/listing/url", ("the registry's url is not an ECR registry's (ACCOUNT.dkr.ecr.REGION."
                                        "amazonaws.com), so an ecr listing needs its url: "
                                        "https://api.ecr.REGION.amazonaws.com")
        at = ecr_api_url(url) or ""
    parts = urlsplit(at)
    host = (parts.hostname or "").lower()
    match = ECR_API_HOST.match(host)
    if match is not None:
        if parts.scheme != "https":
            yield "/spec/listing/url", "ECR's API is https://api.ecr.REGION.amazonaws.com"
        elif isinstance(region, str) and region != match["region"]:
            yield "/spec/listing/region", f"{region} is not the region of the listing url ({match['region']})"
    elif host:
        names = {host, parts.netloc.lower()}
        if not names & {str(h).lower() for h in allowed or ()}:
            yield "/spec/listing/url", (f"{host} is not ECR's API (https://api.ecr.REGION.amazonaws.com): AWS "
                                        "credentials are signed for another endpoint (a VPC endpoint, a proxy) "
                                        f"only when allowedHosts names it; add {parts.netloc.lower()!r} there")
        if not isinstance(region, str) and ECR_REGISTRY_HOST.match(urlsplit(url).hostname or "") is None:
            yield "/spec/listing/region", f"the region to sign for cannot be told from {host}: give region"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _repository(pointer: str, url: Any) -> Iterator[tuple[str, str]]:
    """A git repository's URL, when it is one git must not be given (see check_repository_url)."""
    if isinstance(url, str) and (problem := check_repository_url(url)) is not None:
        yield pointer, f"repository URL {problem}"


def _cluster(document: Document, index: _Index) -> Iterator[tuple[str, str]]:
    spec = document.body.get("spec")
    if not isinstance(spec, dict):
        return
    yield from _repository("/spec/manifests/repo", dig(spec, "manifests", "repo"))
    in_cluster = spec.get("inCluster") is True
    ways = [w for w, present in (("inCluster: true", in_cluster), ("kubeconfig", "kubeconfig" in spec),
                                 ("manifests", "manifests" in spec)) if present]
    if len(ways) > 1:
        yield "/spec", f"set one way to know the cluster, not {' and '.join(ways)}"
    elif not ways:
        yield "/spec", ("say how to reach the cluster: inCluster: true, kubeconfig: {file: PATH}, or manifests: "
                        "{repo, path}")
    if "context" in spec and "kubeconfig" not in spec:
        yield "/spec/context", "context applies only with kubeconfig"


def _retention(document: Document, index: _Index) -> Iterator[tuple[str, ...]]:
    spec = document.body.get("spec")
    if (problem := index.unknown("Registry", dig(spec, "registry"))) is not None:
        yield "/spec/registry", problem
    elif (registry := index.by_kind["Registry"].get(dig(spec, "registry"))) is not None and dig(
            registry.body, "spec", "deletion") == "none":
        yield "/spec/registry", (f"Registry {dig(spec, 'registry')!r} declares deletion: none, so this policy "
                                 "prunes nothing (every plan reports it blocked)"), "warning"
    for field in ("inUse", "helmReleases"):
        for i, name in items(dig(spec, "protect", field)):
            if (problem := index.unknown("Cluster", name)) is not None:
                yield f"/spec/protect/{field}/{i}", problem
            elif field == "helmReleases" and index.known_by_manifests(name):
                yield f"/spec/protect/{field}/{i}", (f"Cluster {name!r} is known by its manifests and has no Helm "
                                                     "release history; list it under inUse")
    for i, rule in items(dig(spec, "keep")):
        if isinstance(rule, dict):
            yield from _keep_rule(f"/spec/keep/{i}", rule)
    if isinstance(spec, dict):
        named = index.by_kind["Registry"].get(str(spec.get("registry")))
        registry_spec = dig(named.body, "spec") if named is not None else None
        yield from _keep_modes(spec, registry_spec if isinstance(registry_spec, dict) else None)


# Listing APIs that report when an image was pushed, and those that list untagged manifests
# (reconcile/adapters/registry/listing.py); the Distribution API reports neither.
PUSH_TIME_LISTINGS = frozenset({"ecr", "harbor", "dockerhub", "gitlab"})
UNTAGGED_LISTINGS = frozenset({"ecr", "harbor"})


def _keep_modes(spec: dict[str, Any], registry: dict[str, Any] | None) -> Iterator[tuple[str, ...]]:
    """keepMode and priority, untagged and tagStatus, age pushed: each where it means something,
    and a warning where the registry cannot say what the rule needs."""
    rules = [(i, r) for i, r in items(spec.get("keep")) if isinstance(r, dict)]
    with_priority = [(i, r["priority"]) for i, r in rules if "priority" in r]
    if with_priority and spec.get("keepMode", "union") != "firstMatch":
        yield (f"/spec/keep/{with_priority[0][0]}/priority",
               "priority orders rules under keepMode: firstMatch only (under union every rule counts); "
               "set keepMode: firstMatch or drop priority")
    elif with_priority and len(with_priority) != len(rules):
        missing = next(i for i, r in rules if "priority" not in r)
        yield (f"/spec/keep/{missing}", "give every keep rule a priority or none (without them, rules decide in "
                                        "list order)")
    else:
        seen: dict[Any, int] = {}
        for i, priority in with_priority:
            if priority in seen:
                yield (f"/spec/keep/{i}/priority", f"priority {priority} is also keep[{seen[priority]}]'s: "
                                                   "each rule needs its own, or which decides first is unclear")
            seen.setdefault(priority, i)
    listing = dig(registry, "listing", "api") if registry is not None else None
    if registry is not None and str(registry.get("url", "")).startswith("oci-layout:"):
        listing = "oci-layout"  # an OCI layout's index lists untagged manifests (no push times)
    selects_untagged = [i for i, r in rules if r.get("tagStatus") == "untagged"]
    if selects_untagged and spec.get("untagged", "keep") != "prune":
        yield (f"/spec/keep/{selects_untagged[0]}/tagStatus",
               "spec.untagged is keep, so every untagged manifest stays and this rule changes nothing: set "
               "untagged: prune to prune the untagged manifests no rule keeps", "warning")
    if spec.get("untagged") == "prune" and registry is not None and listing not in {*UNTAGGED_LISTINGS, "oci-layout"}:
        yield ("/spec/untagged",
               f"Registry {spec.get('registry')!r} cannot list untagged manifests (only the ecr and harbor "
               "listing APIs and OCI layouts can), so untagged: prune prunes none there; the registry's own "
               "garbage collection removes them (docs/registry-gc.md)", "warning")
    for i, rule in rules:
        uses_time = "newerThan" in rule or ("last" in rule and rule.get("order") == "newest")
        if rule.get("age") == "pushed" and uses_time and registry is not None and listing not in PUSH_TIME_LISTINGS:
            yield (f"/spec/keep/{i}/age",
                   f"Registry {spec.get('registry')!r} does not say when images were pushed (only the ecr, "
                   "harbor, dockerhub and gitlab listing APIs do), so every push time is unknown and this rule "
                   "keeps everything it selects", "warning")


def _keep_rule(pointer: str, rule: dict[str, Any]) -> Iterator[tuple[str, ...]]:
    git_refs = rule.get("gitRefs")
    if git_refs is not None:
        others = sorted(k for k in rule if k != "gitRefs")
        if others:
            yield pointer, (f"gitRefs is a rule of its own; move {', '.join(others)} "
                            "into a separate keep rule")
        if isinstance(git_refs, dict):
            yield from _git_refs(pointer + "/gitRefs", git_refs)
        return
    if "operator" in rule and not ("last" in rule and "newerThan" in rule):
        yield pointer + "/operator", "operator combines last and newerThan; set both or drop it"
    if "order" in rule and "last" not in rule:
        yield pointer + "/order", "order applies only with last"
    elif "last" in rule and isinstance(rule.get("tags"), str):
        yield from _rankable(pointer, rule)
    if "descending" in rule and "last" not in rule:
        yield pointer + "/descending", "descending reverses the order of last; set last or drop it"
    if "count" in rule and "last" not in rule:
        yield pointer + "/count", "count says what last counts (tags or images); set last or drop it"
    if "age" in rule and "newerThan" not in rule and not ("last" in rule and rule.get("order") == "newest"):
        yield pointer + "/age", ("age says which time newerThan and order newest look at; set newerThan, or "
                                 "last with order: newest, or drop it")
    status = rule.get("tagStatus", "tagged")
    if status != "tagged":
        for field in ("tags", "semver", "withTags"):
            if field in rule:
                yield pointer + f"/{field}", (f"{field} selects by tag, and tagStatus {status} selects untagged "
                                              "manifests too: drop it, or use tagStatus tagged")
        if rule.get("order", "newest") != "newest":
            yield pointer + "/order", (f"untagged manifests have no tag to order by {rule['order']}: use order "
                                       "newest (their creation or push time), or drop order")
    yield from _semver_options(pointer, rule, reads_versions="semver" in rule or (
        "last" in rule and rule.get("order", "semver") == "semver"))


def _semver_options(pointer: str, spec: dict[str, Any], *, reads_versions: bool) -> Iterator[tuple[str, str]]:
    """``prereleases`` and ``strictSemver`` of a keep rule or track: each only where it changes something."""
    if "prereleases" in spec and "semver" not in spec:
        yield pointer + "/prereleases", ("prereleases says which pre-releases a semver range admits; "
                                         "set semver (e.g. '>=1.0.0-0') or drop it")
    if "strictSemver" in spec and not reads_versions:
        yield pointer + "/strictSemver", ("strictSemver applies where tags are read as versions: with "
                                          "semver, or order semver; drop it")


def _track(pointer: str, track: dict[str, Any]) -> Iterator[tuple[str, str]]:
    order = track.get("order", "semver")
    if "semver" in track and order != "semver":
        yield pointer + "/semver", (f"a semver range selects versions, but this track orders by {order}: "
                                    "drop order (semver is the default) or the range")
    yield from _semver_options(pointer, track, reads_versions=order == "semver")


def _rankable(pointer: str, rule: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """A warning, not an error: the policy still runs, and keeps every tag its order cannot rank."""
    try:
        compiled = patterns.compile_pattern(rule["tags"])
    except ValueError:
        return  # the schema's format check already reported it
    order = rule.get("order") or ("semver" if "semver" in rule else None)
    if (problem := unrankable_pattern(compiled, order)) is not None:
        yield pointer + "/tags", problem, "warning"


def _git_refs(pointer: str, git_refs: dict[str, Any]) -> Iterator[tuple[str, str]]:
    yield from _repository(pointer + "/repo", git_refs.get("repo"))
    if "imagesPerReference" in git_refs and "commitsPerBranch" in git_refs:
        yield pointer + "/imagesPerReference", ("imagesPerReference counts images, commitsPerBranch counts commits: "
                                                "set one of them (drop commitsPerBranch to count images)")
    limit = git_refs.get("limit")
    if isinstance(limit, dict) and "operator" in limit and not ("last" in limit and "in" in limit):
        yield pointer + "/limit/operator", "operator combines last and in; set both or drop it"
    if "branches" not in git_refs and "tags" not in git_refs:
        yield pointer, "say which refs count: branches, tags or both (regular expressions)"
    tag_commit = git_refs.get("tagCommit")
    if tag_commit is None and git_refs.get("revisionLabel") is not True:
        yield pointer, ("say how an image maps to a commit: tagCommit (a regex with a 'commit' "
                        "group) or revisionLabel: true")
    if isinstance(tag_commit, str):
        try:
            compiled = patterns.compile_pattern(tag_commit)
        except ValueError:
            return  # the schema's format check already reported it
        if "commit" not in compiled.groupindex:
            yield pointer + "/tagCommit", ("needs a named group 'commit' capturing the SHA, e.g. "
                                           "'^sha-(?P<commit>[0-9a-f]{7,40})$'")


def _promotion(document: Document, index: _Index) -> Iterator[tuple[str, str]]:
    stages: dict[str, tuple[int, dict[str, Any]]] = {}
    for i, stage in items(dig(document.body, "spec", "stages")):
        name = dig(stage, "name")
        if not isinstance(name, str):
            continue
        if name in stages:
            yield f"/spec/stages/{i}/name", (f"duplicate stage {name!r} (first is stage "
                                             f"{stages[name][0]})")
        else:
            stages[name] = (i, stage)
    if not stages:
        return
    roots = [name for name, (_, stage) in stages.items() if "track" in stage]
    if not roots:
        yield "/spec/stages", "no stage has 'track': the first stage of a pipeline says which tags are candidates"
    for name in roots[1:]:
        yield f"/spec/stages/{stages[name][0]}/track", (f"only one stage may track candidates; "
                                                        f"{roots[0]!r} already does")
    for name, (i, stage) in stages.items():
        yield from _stage(f"/spec/stages/{i}", name, stage, stages, index, document)
    yield from _pipeline_shape(roots[:1], stages)


def _stage(pointer: str, name: str, stage: dict[str, Any],
           stages: dict[str, tuple[int, dict[str, Any]]], index: _Index,
           document: Document) -> Iterator[tuple[str, str]]:
    if (problem := index.unknown("Registry", stage.get("registry"))) is not None:
        yield pointer + "/registry", problem
    source = stage.get("from")
    if "track" in stage:
        if isinstance(stage["track"], dict):
            yield from _track(pointer + "/track", stage["track"])
        for field in ("from", "tags", "gates"):
            if field in stage:
                yield f"{pointer}/{field}", (f"the source stage tracks candidates; {field} "
                                             "belongs on the stages it promotes to")
        return
    if source is None:
        yield pointer, "needs 'from': the stage whose image it promotes (or 'track' if it is the source)"
    elif isinstance(source, str):
        if source not in stages:
            yield pointer + "/from", unknown_message("stage", source, stages)
        elif source != name and (dig(stages[source][1], "registry"), dig(stages[source][1], "repository")) == (
                stage.get("registry"), stage.get("repository")):
            yield pointer + "/repository", (f"same registry and repository as stage {source!r} "
                                            "it promotes from; a stage needs a place of its own")
    for j, template in items(stage.get("tags")):
        if isinstance(template, str) and (problem := _tag_template(template)) is not None:
            yield f"{pointer}/tags/{j}", problem
    gates = stage.get("gates")
    if isinstance(gates, dict):
        yield from _gates(pointer + "/gates", gates, source, document, index)


def _tag_template(template: str) -> str | None:
    sample: dict[str, str] = {}
    try:
        for _, field, spec, conversion in string.Formatter().parse(template):
            if field is None:
                continue
            if field not in TAG_PLACEHOLDERS or spec or conversion:
                return (f"unknown placeholder {{{field}}} in {template!r}; use "
                        + ", ".join(f"{{{p}}}" for p in TAG_PLACEHOLDERS))
            sample[field] = "1.2.3" if field == "version" else "abcdef012345"
    except ValueError as e:
        return f"{template!r} is not a valid tag template: {e}"
    if not _TAG.match(template.format(**sample)):
        return (f"{template!r} does not make a valid tag (letters, digits, '_', '.', '-'; "
                "not starting with '.' or '-'; at most 128 characters)")
    return None


def _gates(pointer: str, gates: dict[str, Any], source: Any, document: Document,
           index: _Index) -> Iterator[tuple[str, str]]:
    for i, name in items(gates.get("healthyIn")):
        if (problem := index.unknown("DeployPolicy", name)) is not None:
            yield f"{pointer}/healthyIn/{i}", problem
            continue
        deployed = dig(index.by_kind["DeployPolicy"][name].body, "spec", "stage")
        expected = f"{document.name}/{source}"
        if isinstance(deployed, str) and isinstance(source, str) and deployed != expected:
            yield f"{pointer}/healthyIn/{i}", (f"DeployPolicy {name!r} deploys {deployed}, not "
                                               f"the stage this one promotes from ({expected})")
    approval = gates.get("approval")
    if isinstance(approval, str):
        normal = posixpath.normpath(approval)
        if approval.startswith("/") or normal == ".." or normal.startswith("../"):
            yield pointer + "/approval", "must be a path inside the repo-of-record, relative to its root"
    for i, window in items(gates.get("freeze")):
        if isinstance(window, dict):
            yield from _freeze_window(f"{pointer}/freeze/{i}", window)


def _freeze_window(pointer: str, window: dict[str, Any]) -> Iterator[tuple[str, str]]:
    start, end = window.get("from"), window.get("until")
    if "days" in window:
        for field, value in (("from", start), ("until", end)):
            if isinstance(value, str) and not _HHMM.match(value):
                yield f"{pointer}/{field}", f"{value!r} is not a time of day HH:MM (weekly window)"
        zone = window.get("timeZone")
        if isinstance(zone, str):
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                yield pointer + "/timeZone", f"unknown time zone {zone!r}; use an IANA name such as Europe/Berlin"
        return
    if "timeZone" in window:
        yield pointer + "/timeZone", "timeZone applies to weekly windows (with days); date-times carry their offset"
    parsed = {}
    for field, value in (("from", start), ("until", end)):
        if not isinstance(value, str):
            continue
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            yield f"{pointer}/{field}", (f"{value!r} is not an RFC 3339 date-time with offset, e.g. "
                                         "2026-12-20T00:00:00Z (or add days for a weekly window)")
        else:
            parsed[field] = moment
    if len(parsed) == 2 and parsed["from"] >= parsed["until"]:
        yield pointer + "/until", "must be after from"


def _pipeline_shape(roots: list[str], stages: dict[str, tuple[int, dict[str, Any]]]
                    ) -> Iterator[tuple[str, str]]:
    parents = {name: stage.get("from") for name, (_, stage) in stages.items()
               if isinstance(stage.get("from"), str) and stage.get("from") in stages}
    in_cycle: set[str] = set()
    for start in stages:  # walk each stage's 'from' chain; revisiting the walk means a cycle
        path: list[str] = []
        node: str | None = start
        while node is not None and node not in path and node not in in_cycle:
            path.append(node)
            node = parents.get(node)
        if node is not None and node in path:
            cycle = path[path.index(node):]
            in_cycle.update(cycle)
            first = min(cycle, key=lambda n: stages[n][0])
            chain = cycle[cycle.index(first):] + cycle[:cycle.index(first)]  # follows 'from'
            shown = " -> ".join([first, *reversed(chain[1:]), first])  # the way images flow
            yield (f"/spec/stages/{stages[first][0]}/from",
                   f"stages form a cycle: {shown}; a pipeline flows from its source stage")
    reachable = set(roots)
    changed = True
    while changed:
        changed = False
        for name, parent in parents.items():
            if name not in reachable and parent in reachable:
                reachable.add(name)
                changed = True
    if not roots:
        return
    for name, (i, stage) in stages.items():
        if name not in reachable and name not in in_cycle and isinstance(stage.get("from"), str) \
                and stage["from"] in stages:
            yield (f"/spec/stages/{i}/from",
                   f"stage {name!r} is unreachable from the source stage {roots[0]!r}")


def _deploy(document: Document, index: _Index) -> Iterator[tuple[str, str]]:
    spec = document.body.get("spec")
    if not isinstance(spec, dict):
        return
    stage = spec.get("stage")
    if isinstance(stage, str) and stage.count("/") == 1:
        policy_name, stage_name = stage.split("/")
        policy = index.by_kind["PromotionPolicy"].get(policy_name)
        if policy is None:
            yield "/spec/stage", unknown_message("PromotionPolicy", policy_name,
                                                 index.by_kind["PromotionPolicy"])
        else:
            names = [dig(s, "name") for _, s in items(dig(policy.body, "spec", "stages"))]
            if stage_name not in names:
                yield "/spec/stage", unknown_message(f"stage of PromotionPolicy {policy_name!r}:",
                                                     stage_name, [n for n in names if n])
    yield from _repository("/spec/manifests/repo", dig(spec, "manifests", "repo"))
    has_cluster, has_manifests, has_heroku = "cluster" in spec, "manifests" in spec, "heroku" in spec
    if has_cluster + has_manifests + has_heroku != 1:
        yield "/spec", ("set exactly one target: cluster (patch it), manifests (git write-back) or heroku "
                        "(release through the Heroku Platform API)")
    if has_heroku:
        yield from _heroku(spec)
    elif "workloads" not in spec:
        yield "/spec", "workloads are required with cluster and manifests"
    if (problem := index.unknown("Cluster", spec.get("cluster"))) is not None:
        yield "/spec/cluster", problem
    elif index.known_by_manifests(spec.get("cluster")):
        yield "/spec/cluster", ("this Cluster is known by its manifests only; deploy through the manifests "
                                "repository instead (spec.manifests)")
    if has_cluster and "namespace" not in spec:
        yield "/spec", "namespace is required with cluster"
    seen: dict[tuple[Any, ...], int] = {}
    for i, workload in items(spec.get("workloads")):
        if isinstance(workload, dict):
            key = (workload.get("kind"), workload.get("name"), workload.get("container"))
            if key in seen:
                yield f"/spec/workloads/{i}", f"same workload and container as workloads[{seen[key]}]"
            seen.setdefault(key, i)


def _heroku(spec: dict[str, Any]) -> Iterator[tuple[str, str]]:
    heroku = spec.get("heroku")
    if not isinstance(heroku, dict):
        return
    if "workloads" in spec:
        yield "/spec/workloads", "a heroku target releases a process type (heroku.process), not workloads"
    if "namespace" in spec:
        yield "/spec/namespace", "a heroku target has no namespace"
    token = heroku.get("token")
    if isinstance(token, dict) and "dockerConfig" in token:
        yield "/spec/heroku/token", ("a dockerConfig reference holds registry credentials, not one value; use env, "
                                     "file or kubernetes")
    api = heroku.get("api")
    if isinstance(api, str) and api.startswith(("http://", "https://")):
        parts = urlsplit(api)
        if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
            yield "/spec/heroku/api", "the api is a base URL (scheme, host, optional port and path), nothing more"
        elif api.startswith("http://") and not _is_loopback(parts.hostname or ""):
            yield "/spec/heroku/api", (f"plain http is allowed only for loopback hosts (localhost, 127.0.0.0/8, ::1), "
                                       f"not {parts.hostname or ''!r}; use https://")


def _notification(document: Document, index: _Index) -> Iterator[tuple[str, ...]]:
    spec = document.body.get("spec")
    if not isinstance(spec, dict):
        return
    if "apprise" not in spec and "webhook" not in spec:
        yield "/spec", "say where to notify: apprise (secret references to apprise URLs), webhook, or both"
    when = spec.get("when")
    if isinstance(when, list) and "always" in when and len(when) > 1:
        yield "/spec/when", "always already includes every other condition", "warning"
    refs = [(f"/spec/apprise/{i}", ref) for i, ref in items(spec.get("apprise"))]
    refs += [(f"/spec/webhook/{field}", dig(spec, "webhook", field)) for field in ("url", "secret")]
    for pointer, ref in refs:
        if isinstance(ref, dict) and "dockerConfig" in ref:
            yield pointer, ("a dockerConfig reference holds registry credentials, not one value; use env, file "
                            "or kubernetes")
    url = dig(spec, "webhook", "url")
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            yield "/spec/webhook/url", "a URL with credentials in it is a secret: give it as a secret reference"
        elif url.startswith("http://") and not _is_loopback(parts.hostname or ""):
            yield "/spec/webhook/url", (f"plain http is allowed only for loopback hosts (localhost, 127.0.0.0/8, ::1), "
                                        f"not {parts.hostname or ''!r}; use https://")

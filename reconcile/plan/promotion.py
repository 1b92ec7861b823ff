"""Promotion: which digest each stage of a pipeline should hold, and whether its gates let it.

The source stage's newest candidate (by the track's order) flows one stage at a time: each later
stage receives the digest its ``from`` stage currently holds, under its own tags, once every gate
(soak, healthyIn, approval, freeze windows) is open. Pure: observations and history come in as data.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from reconcile.observe.state import DeployHealth, Image, RepositoryState
from reconcile.plan.actions import Action, ActionKind, Block, Cause
from reconcile.policy.durations import format_duration
from reconcile.policy.model import Approval, DateRangeFreeze, PromotionPolicy, Stage, Track, WeeklyFreeze
from reconcile.policy.ordering import number
from reconcile.policy.semver import Version

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
KEEP, PROMOTE, BLOCKED = ActionKind.KEEP, ActionKind.PROMOTE, ActionKind.BLOCKED


@dataclass(frozen=True)
class PromotionInputs:
    stages: Mapping[str, RepositoryState | str]  # stage -> its repository as observed, or why not
    # (stage, digest) -> promoted at; or why they are unknown (the audit trail could not be read)
    arrivals: Mapping[tuple[str, str], datetime] | str = field(default_factory=dict)
    health: Mapping[str, DeployHealth | str] = field(default_factory=dict)  # DeployPolicy -> health, or why not
    approvals: Mapping[str, tuple[Approval, ...] | str] = field(default_factory=dict)  # path -> entries, or why not


@dataclass(frozen=True)
class Candidate:
    tag: str
    version: str
    digest: str


def select_candidate(track: Track, repository: RepositoryState) -> Candidate | None:
    """The newest tag the track accepts. A multi-arch image is its index digest: the tag's own.
    A track of one literal tag (``^latest$``) follows that tag, whatever its order."""
    if (followed := track.follows) is not None:
        found = repository.tags.get(followed)
        return Candidate(followed, followed, found.digest) if found is not None else None
    ranked: list[tuple[object, str, str]] = []
    for tag, version in _matching(track, repository):
        key = _order_key(track, version, repository.images.get(repository.tags[tag].digest))
        if key is not None:
            ranked.append((key, tag, version))
    if not ranked:
        return None
    if track.descending:  # the lowest wins; among equal keys on one digest, the first tag by name
        best = min(key for key, _, _ in ranked)  # type: ignore[type-var]
        best, tag, version = min(r for r in ranked if r[0] == best)
    else:
        best, tag, version = max(ranked)
    tied = sorted(t for key, t, _ in ranked if key == best and repository.tags[t].digest != repository.tags[tag].digest)
    if tied:  # the order cannot tell them apart: picking by tag name would be a guess
        raise AmbiguousCandidate(track, sorted({tag, *tied}))
    return Candidate(tag, version, repository.tags[tag].digest)


class AmbiguousCandidate(ValueError):
    """The track's order ranks tags on different digests equal at the top (reproducible builds
    share one creation time; ``010`` and ``10`` are one number): nothing is promoted or deployed."""

    def __init__(self, track: Track, tags: list[str]) -> None:
        shown = ", ".join(tags[:5]) + (f" and {len(tags) - 5} more" if len(tags) > 5 else "")
        fix = " (reproducible builds share one creation time: order by a build number instead)" \
            if track.order == "newest" else ""
        super().__init__(f"the track's order ({track.order}) ranks {shown} equal, on different digests; "
                         f"nothing is promoted until one ranks first{fix}")


def _matching(track: Track, repository: RepositoryState) -> list[tuple[str, str]]:
    """(tag, version part) of each tag the track's patterns select, by name."""
    found = []
    for tag in sorted(repository.tags):
        match = track.tags.search(tag)
        if match is None or (track.allow and not track.allow.search(tag)) or (
                track.ignore and track.ignore.search(tag)):
            continue
        found.append((tag, match.groupdict().get("version") or (match.group(1) if match.re.groups else None) or tag))
    return found


def no_candidate_reason(track: Track, repository: RepositoryState) -> str:
    """Why :func:`select_candidate` found nothing: no tag matches, or the tags that match are not
    what the track's order (or semver range) takes, named with an example."""
    matching = _matching(track, repository)
    if track.follows is not None or not matching:
        return f"no tag matches the track '{track.tags.pattern}'"
    tag, version = matching[0]
    count = f"{len(matching)} tag{'s match' if len(matching) > 1 else ' matches'} the track '{track.tags.pattern}'"
    if track.order == "semver" and track.semver is not None and (
            parsed := Version.try_parse(version, strict=track.strict_semver)) is not None:
        return f"{count}, none within semver '{track.semver}' (e.g. {tag!r}: {parsed.original} is not)"
    if track.order == "newest":
        return f"{count}, and the creation time of none is known (order newest): e.g. {tag!r}"
    what = {"semver": "a semantic version", "numeric": "a number (integer or decimal)",
            "alphabetical": "text"}[track.order]
    return f"{count}, but order {track.order} ranks none of them: e.g. {tag!r}, whose version {version!r} is not {what}"


def _order_key(track: Track, version: str, image: Image | None) -> object | None:
    order = track.order
    if order == "semver":
        parsed = Version.try_parse(version, strict=track.strict_semver)  # strict: a short all-digit SHA is no version
        if parsed is None or (track.semver is not None and not track.semver.contains(parsed)):
            return None
        return parsed.sort_key
    if order == "numeric":
        return number(version)  # integers and decimals, by value
    if order == "alphabetical":
        return version
    return image.created if image is not None and image.created is not None else None


def render_tags(stage: Stage, candidate: Candidate, digest: str) -> tuple[str, ...]:
    values = {"version": candidate.version, "stage": stage.name, "shortDigest": digest.removeprefix("sha256:")[:12]}
    return tuple(template.format(**values) for template in stage.tags)


def _immutable(template: str) -> bool:
    """A tag made from the image's identity ({version}, {shortDigest}) names one digest forever."""
    return any(field in ("version", "shortDigest") for _, field, _, _ in string.Formatter().parse(template) if field)


def plan_promotion(policy: PromotionPolicy, inputs: PromotionInputs, now: datetime) -> list[Action]:
    subject = f"PromotionPolicy/{policy.name}"
    source = policy.stages[0]
    assert source.track is not None
    observed = inputs.stages.get(source.name)
    if not isinstance(observed, RepositoryState):
        return [Action(subject, BLOCKED, f"{source.registry}/{source.repository}",
                       reason=f"stage {source.name} could not be read: {observed or 'not observed'}",
                       block=Block.UNREADABLE, cause=Cause.REGISTRY_UNREADABLE)]
    try:
        candidate = select_candidate(source.track, observed)
    except AmbiguousCandidate as e:
        return [Action(subject, BLOCKED, f"{source.registry}/{source.repository}", reason=str(e),
                       block=Block.CONFLICT, cause=Cause.AMBIGUOUS_CANDIDATE)]
    if candidate is None:
        return [Action(subject, BLOCKED, f"{source.registry}/{source.repository}",
                       reason=no_candidate_reason(source.track, observed), block=Block.WAITING,
                       cause=Cause.NO_CANDIDATE)]
    # Each stage receives what its 'from' stage holds as observed, not as this plan would leave it:
    # one stage per run, so every hop is observed (and soaked, and checked) before the next.
    current: dict[str, str | None] = {source.name: candidate.digest}
    for stage in policy.stages[1:]:
        repo = inputs.stages.get(stage.name)
        current[stage.name] = stage_digest(stage, repo) if isinstance(repo, RepositoryState) else None
    return [_stage(subject, policy, stage, candidate, observed, current, inputs, now) for stage in policy.stages[1:]]


def _stage(subject: str, policy: PromotionPolicy, stage: Stage, candidate: Candidate, source_repo: RepositoryState,
           current: dict[str, str | None], inputs: PromotionInputs, now: datetime) -> Action:
    where = f"{stage.registry}/{stage.repository}"
    repo = inputs.stages.get(stage.name)
    if not isinstance(repo, RepositoryState):
        return Action(subject, BLOCKED, where, reason=f"stage {stage.name} could not be read: "
                                                      f"{repo or 'not observed'}", block=Block.UNREADABLE,
                      cause=Cause.REGISTRY_UNREADABLE)
    held = current[stage.name]
    digest = current.get(stage.source or "")
    if digest is None:
        return Action(subject, BLOCKED, where, held, held,
                      f"stage {stage.source} holds no digest to promote yet", block=Block.WAITING,
                      cause=Cause.STAGE_EMPTY)
    track = policy.stages[0].track
    assert track is not None  # the tracking stage has one (plan_promotion checked)
    version = _version_of(digest, candidate, source_repo, track)
    if version is None:
        return Action(subject, BLOCKED, where, held, held, (
            f"cannot tell the version of {_short(digest)} held by {stage.source}: no tag of the source stage "
            "names it any more"), block=Block.WAITING, cause=Cause.VERSION_UNKNOWN)
    tags = render_tags(stage, version, digest)
    if all(tag in repo.tags and repo.tags[tag].digest == digest for tag in tags):
        return Action(subject, KEEP, f"{where}@{digest}", digest, digest,
                      f"{stage.name} holds {version.version} ({_short(digest)}) under {', '.join(tags)}", tuple(tags),
                      cause=Cause.UP_TO_DATE)
    conflicts = [tag for template, tag in zip(stage.tags, tags, strict=True)
                 if _immutable(template) and tag in repo.tags and repo.tags[tag].digest != digest]
    if conflicts:
        taken = ", ".join(f"{tag} -> {_short(repo.tags[tag].digest)}" for tag in conflicts)
        return Action(subject, BLOCKED, f"{where}@{digest}", held, digest, (
            f"version tag conflict in {stage.name}: {taken}; an immutable tag is never overwritten"), tuple(tags),
            block=Block.CONFLICT, cause=Cause.TAG_CONFLICT)
    gates = _gates(stage, digest, version, inputs, now)
    states = "; ".join(state for _, state in gates) or "no gates"
    if all(is_open for is_open, _ in gates):
        return Action(subject, PROMOTE, f"{where}@{digest}", held, digest,
                      f"{version.version} from {stage.source} to {stage.name}: {states}", tuple(tags),
                      cause=Cause.GATES_OPEN)
    unknown = any(state is _UNREADABLE for state, _ in gates)  # a gate whose input could not be read
    return Action(subject, BLOCKED, f"{where}@{digest}", held, digest,
                  f"{version.version} waits to enter {stage.name}: {states}", tuple(tags),
                  block=Block.UNREADABLE if unknown else Block.GATE,
                  cause=Cause.GATE_UNREADABLE if unknown else Cause.GATE_CLOSED)


def stage_digest(stage: Stage, repository: RepositoryState) -> str | None:
    """What a stage holds now: a tracked stage its newest candidate, a promoted-to stage the digest
    of its first moving tag (one without placeholders)."""
    if stage.track is not None:
        candidate = select_candidate(stage.track, repository)
        return candidate.digest if candidate else None
    for template in stage.tags:
        if "{" not in template and template in repository.tags:
            return repository.tags[template].digest
    return None


def _version_of(digest: str, candidate: Candidate, source_repo: RepositoryState, track: Track) -> Candidate | None:
    if digest == candidate.digest:
        return candidate
    for tag in sorted(source_repo.tags_of(digest)):  # an older candidate, still held downstream
        match = track.tags.search(tag)
        if match is not None:
            version = match.groupdict().get("version") or (match.group(1) if match.re.groups else None) or tag
            return Candidate(tag, version, digest)
    return None


class _Unreadable:
    """A closed gate whose input (deploy health, approval file) could not be read: falsy like a
    closed gate, and known apart from one."""

    def __bool__(self) -> bool:
        return False


_UNREADABLE = _Unreadable()


def _gates(stage: Stage, digest: str, version: Candidate, inputs: PromotionInputs,
           now: datetime) -> list[tuple[bool | _Unreadable, str]]:
    """Each gate: open (True), closed (False) or closed because its input could not be read."""
    gates = stage.gates
    states: list[tuple[bool | _Unreadable, str]] = []
    if gates.soak is not None:
        arrived = None if isinstance(inputs.arrivals, str) else inputs.arrivals.get((stage.source or "", digest))
        if isinstance(inputs.arrivals, str):
            states.append((_UNREADABLE, f"soak blocked: when {_short(digest)} reached {stage.source} is unknown: "
                                        f"{inputs.arrivals}"))
        elif arrived is None:
            states.append((False, f"soak blocked: no record of {_short(digest)} reaching {stage.source}"))
        elif now - arrived >= gates.soak:
            states.append((True, f"soak open ({format_duration(max(now - arrived, timedelta(0)))} in "
                                 f"{stage.source} >= {format_duration(gates.soak)})"))
        else:
            states.append((False, f"soak waiting until {_when(arrived + gates.soak)}"))
    for deploy in gates.healthy_in:
        health = inputs.health.get(deploy)
        if not isinstance(health, DeployHealth):
            states.append((_UNREADABLE, f"healthyIn {deploy} blocked: could not be read ({health or 'not observed'})"))
        elif health.digest != digest:
            runs = _short(health.digest) if health.digest else "nothing"
            states.append((False, f"healthyIn {deploy} blocked: it runs {runs}, not {_short(digest)}"))
        elif not health.healthy:
            detail = f": {health.detail}" if health.detail else ""
            states.append((False, f"healthyIn {deploy} blocked: not healthy{detail}"))
        else:
            states.append((True, f"healthyIn {deploy} open"))
    if gates.approval is not None:
        entries = inputs.approvals.get(gates.approval)
        if not isinstance(entries, tuple):
            # missing or malformed: the approval is not given (a closed gate), not a source that failed
            states.append((False, f"approval blocked: {gates.approval} {entries or 'does not exist'}"))
        else:
            by = [e.approved_by for e in entries if e.digest == digest or (e.version and e.version == version.version)]
            states.append((True, f"approval open (by {', '.join(sorted(set(by)))})") if by else
                          (False, f"approval blocked: {gates.approval} does not approve {version.version} "
                                  f"({_short(digest)})"))
    for window in gates.freeze:
        until = frozen_until(window, now)
        if until is not None:
            why = f" ({window.reason})" if window.reason else ""
            states.append((False, f"freeze waiting until {_when(until)}{why}"))
    return states


def frozen_until(window: DateRangeFreeze | WeeklyFreeze, now: datetime) -> datetime | None:
    """When the freeze window covering ``now`` ends, or None when none does."""
    if isinstance(window, DateRangeFreeze):
        return window.end if window.start <= now < window.end else None
    zone = ZoneInfo(window.time_zone)
    local = now.astimezone(zone)
    for days_back in (0, 1):  # a window that runs past midnight opened the day before
        day = (local - timedelta(days=days_back)).date()
        if DAYS[day.weekday()] not in window.days:
            continue
        start = datetime.combine(day, window.start, zone)
        end_day = day if window.end > window.start else day + timedelta(days=1)
        end = datetime.combine(end_day, window.end, zone)
        if start <= local < end:
            return end
    return None


def _when(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%MZ")


def _short(digest: str | None) -> str:
    return (digest or "?")[:19]

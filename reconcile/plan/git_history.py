"""gitRefs keep rules that read each ref's history, as werf's cleanup ``keepPolicies`` do. Pure.

``limit`` (werf's ``references.limit``; ``applyReferencesLimit`` in werf's
pkg/cleaning/git_history_based_cleanup/reference_to_scan.go): of the refs a rule matches, only
those whose head date (a branch's head commit's committer date, an annotated tag's tagger date,
else its commit's) is within ``in``, and/or the ``last`` N by that date, newest first (refs tied
with the Nth count too); And (the default) needs both, Or either. Branches and tags are limited
each on their own, as a werf policy names branches or tags.

``imagesPerReference`` (werf's; ``scanReferenceHistory`` in .../scanner.go): each counted ref's
history is walked from its head, newest first (git rev-list's order; a git tag looks at its own
commit only, werf's scan depth 1 for tags). At each commit, the images (digests) whose tag names
it (``tagCommit``) or whose revision label is it (``revisionLabel``) that no earlier commit of the
walk already found are the next image: several images first found at one commit count as one
(werf: "Counted tags as one due to identical related commit"), many commits of one image count
once, a commit with no image does not count. The first ``last`` images are kept. With ``in``, an
image is within it when the commit it was found at was committed less than ``in`` ago (werf's
test) or the image itself was created less than ``in`` ago, or its creation time is unknown
(fail closed): And keeps the first ``last`` of the images within ``in`` (the others do not count,
as werf drops them before its scan), Or keeps the first ``last`` and every image within ``in``.

A branch's walk reads at most the observation's depth of commits (``GitHistories.depth``). When it
stopped there before its count was reached (or, with Or and ``in``, at all), what older commits
hold is unknown, so the rule keeps (fail closed) every image it selects that the walk did not
find: all of them short of the count; with Or and ``in`` those within ``in`` by creation time.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from reconcile.observe.state import Descriptor, GitHistories, Image, RefHistory
from reconcile.policy.durations import format_duration
from reconcile.policy.model import GitRefs, GitRefsLimit

_INDEX: dict[int, tuple[GitHistories, tuple[str, ...]]] = {}  # id -> (the histories, held; their SHAs sorted)
_INDEX_LOCK = threading.Lock()  # streamed plans look it up from the observation's threads


def limited(histories: GitHistories, limit: GitRefsLimit | None, now: datetime) -> tuple[RefHistory, ...]:
    """The refs that count under ``limit``, by name."""
    if limit is None:
        return histories.refs
    branches = [r for r in histories.refs if r.ref.startswith("refs/heads/")]
    tags = [r for r in histories.refs if not r.ref.startswith("refs/heads/")]
    kept = {r.ref for group in (branches, tags) for r in _limit(group, limit, now)}
    return tuple(r for r in histories.refs if r.ref in kept)


def _limit(refs: Sequence[RefHistory], limit: GitRefsLimit, now: datetime) -> list[RefHistory]:
    by_in = list(refs) if limit.within is None else [
        r for r in refs if r.created > (now - limit.within).timestamp()]
    by_last = list(refs)
    if limit.last is not None and len(refs) > limit.last:
        nth = sorted((r.created for r in refs), reverse=True)[limit.last - 1]
        by_last = [r for r in refs if r.created >= nth]  # ties with the Nth count too
    names = {r.ref for r in by_last}
    if limit.operator == "Or":
        names |= {r.ref for r in by_in}
    else:
        names &= {r.ref for r in by_in}
    return [r for r in refs if r.ref in names]


def live_commits(histories: GitHistories, refs: GitRefs, now: datetime) -> frozenset[str]:
    """commitsPerBranch with a ``limit``: the commits of the refs that count."""
    return frozenset(sha for ref in limited(histories, refs.limit, now) for sha, _ in ref.commits)


def kept_images(label: str, refs: GitRefs, tags: Mapping[str, Descriptor], images: Mapping[str, Image],
                histories: GitHistories, now: datetime) -> list[tuple[str, str]]:
    """(tag, why) for every tag imagesPerReference keeps, by tag."""
    per_ref = refs.images_per_reference
    assert per_ref is not None
    last = per_ref.last if per_ref.last is not None else 1
    within = per_ref.within
    shas = _sorted_shas(histories)
    named: dict[str, list[str]] = {}  # digest -> its tags that name a commit
    at: dict[str, set[str]] = {}  # commit -> digests naming it
    for tag, descriptor in sorted(tags.items()):
        prefixes = _prefixes(tag, images.get(descriptor.digest), refs)
        if not prefixes:
            continue
        named.setdefault(descriptor.digest, []).append(tag)
        for prefix in prefixes:
            for sha in _named(shas, prefix):
                at.setdefault(sha, set()).add(descriptor.digest)
    why: dict[str, str] = {}  # digest -> why it is kept
    for ref in limited(histories, refs.limit, now):
        kind, name = ("branch", ref.ref.removeprefix("refs/heads/")) if ref.ref.startswith("refs/heads/") else (
            "tag", ref.ref.removeprefix("refs/tags/"))
        of = f"of the last {last}{f' within {format_duration(within)}' if within is not None else ''} of {kind} {name}"
        found: set[str] = set()
        counted = 0
        for sha, committed in ref.commits:
            new = sorted(at.get(sha, set()) - found)
            if not new:
                continue
            found.update(new)
            young = {d: _within(within, committed, images.get(d), now) for d in new} if within is not None else {}
            if within is not None and per_ref.operator == "And":
                new = [d for d in new if young[d] is not None]
                if not new:
                    continue  # older than 'in': it does not count
            counted += 1
            for digest in new:
                if counted <= last:
                    text = f"image {counted} {of} (built from commit {sha[:12]}" + (
                        f", {young[digest]})" if young.get(digest) else ")")
                elif young.get(digest):
                    text = (f"within {format_duration(within or timedelta())} of {kind} {name}: "
                            f"built from commit {sha[:12]}, {young[digest]}")
                else:
                    continue
                why.setdefault(digest, f"{label}: {text}")
            if counted >= last and not (within is not None and per_ref.operator == "Or"):
                break
        if ref.truncated and (counted < last or (within is not None and per_ref.operator == "Or")):
            read = f"{kind} {name}'s history was read to its first {len(ref.commits)} commits"
            for digest in sorted(named.keys() - found - {d for sha, _ in ref.commits for d in at.get(sha, ())}):
                if counted < last:
                    why.setdefault(digest, f"{label}: {read} with {counted} of its last {last} images found; "
                                           "older commits were not read and this image's commit is not among "
                                           "those read, so it is kept (fail closed)")
                elif (age := _within(within, None, images.get(digest), now)) is not None:
                    why.setdefault(digest, f"{label}: {read}; this image's commit is not among those read and it "
                                           f"may be within {format_duration(within or timedelta())} ({age}), so "
                                           "it is kept (fail closed)")
    return [(tag, why[digest]) for digest in sorted(why) for tag in named[digest]]


def _within(within: timedelta | None, committed: int | None, image: Image | None, now: datetime) -> str | None:
    """Why an image counts as within ``within``, or None: its commit's committer date (werf's), or
    its creation time (unknown, or in the future, counts as within: fail closed)."""
    if within is None:
        return None
    if committed is not None and now.timestamp() - committed < within.total_seconds():
        ago = now.timestamp() - committed
        return "committed in the future (clock skew?)" if ago < 0 else \
            f"committed {format_duration(timedelta(seconds=int(ago)))} ago"
    created = image.created if image is not None else None
    if created is None:
        return "its creation time unknown, so its age cannot count against it"
    if created > now:
        return "created in the future (clock skew?)"
    if now - created < within:
        return f"created {format_duration(now - created)} ago"
    return None


def _prefixes(tag: str, image: Image | None, refs: GitRefs) -> list[str]:
    """The commit SHAs (7 hex digits or more) a tag names, by tagCommit or revisionLabel."""
    found = []
    if refs.tag_commit is not None and (match := refs.tag_commit.search(tag)):
        found.append((match.group("commit") or "").lower())
    if refs.revision_label and image is not None and image.revision:
        found.append(image.revision.lower())
    return [prefix for prefix in found if len(prefix) >= 7]


def _named(shas: tuple[str, ...], prefix: str) -> list[str]:
    """Every read commit a (possibly abbreviated) SHA names: all of them when it is ambiguous (the
    image then counts at each, and is kept if any keeps it)."""
    found = []
    at = bisect_left(shas, prefix)
    while at < len(shas) and shas[at].startswith(prefix):
        found.append(shas[at])
        at += 1
    return found


def _sorted_shas(histories: GitHistories) -> tuple[str, ...]:
    """Sorted once per observation of a rule, however many repositories look it up."""
    with _INDEX_LOCK:
        cached = _INDEX.get(id(histories))
        if cached is not None and cached[0] is histories:
            return cached[1]
        if len(_INDEX) >= 16:
            _INDEX.pop(next(iter(_INDEX)))
        shas = tuple(sorted(histories.commits()))
        _INDEX[id(histories)] = (histories, shas)
        return shas

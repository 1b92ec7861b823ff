"""docs/conformance.md, generated from the conformance cases: every case of every peer with its
source, input, the peer's configuration and result, the reconcile policy and reconcile's result as
the real loader and planner compute it now, and whether they agree. tests/conformance/test_table.py
fails when the page is not what this makes. Regenerate with

    .venv/bin/python -m tests.conformance.table > docs/conformance.md
"""

from __future__ import annotations

from collections.abc import Sequence

from tests.conformance.model import AGREES, DIFFERS, NOT_EXPRESSIBLE, Case, RetentionCase, SelectionCase, retain, select
from tests.conformance.retention_cases import ECR, RETENTION_CASES, WERF, WERF_REPO
from tests.conformance.selection_cases import ARGO, ARGO_REPO, FLUX, FLUX_REPO, KARGO, KARGO_REPO, SELECTION_CASES

PEERS = (FLUX, ARGO, KARGO, WERF, ECR)
REPOSITORIES = {FLUX: FLUX_REPO, ARGO: ARGO_REPO, KARGO: KARGO_REPO, WERF: WERF_REPO}
CASES: Sequence[Case] = [*SELECTION_CASES, *RETENTION_CASES]

INTRO = """\
# Conformance with peer tools

<!-- generated from tests/conformance/ by tests/conformance/table.py; tests/conformance/test_table.py keeps it
     the same: .venv/bin/python -m tests.conformance.table > docs/conformance.md -->

What reconcile decides where people come from [Flux image automation][flux] (ImagePolicy), [Argo CD
Image Updater][argo] (update strategies), [Kargo][kargo] (Warehouse image subscriptions), [werf
cleanup][werf] (keepPolicies) and [Amazon ECR lifecycle policies][ecr]: each peer's documented
examples and the cases of its own test suite, every one with its source (the peer's repository at
the commit read, the test file, function and subtest; or the documentation page), its input (tags,
with their times), the peer's configuration and result, the equivalent reconcile policy fragment,
and reconcile's result. Reconcile's result is computed, not written: the fragment is loaded by the
real policy loader (schema, cross-checks, typed policies) and decided by the planner's pure
functions, `select_candidate` (a track picks one tag) and `plan_retention` (which images stay).
Each case is a test (`tests/conformance/test_selection_peers.py`,
`tests/conformance/test_retention_peers.py`) asserting that result: the peer's, or, where the case
says why, reconcile's own documented one.

A case **agrees** when reconcile's result is the peer's, **differs** when it is not (a deliberate
difference, explained), and is **not expressible** when no reconcile policy says what the peer's
configuration says (explained; the closest translation is still run and its result shown). In a
selection, `none` is "nothing selected" (the peer returns no tag, or an error that selects none),
`refused` a configuration the tool refuses (reconcile: `validate`), `refused: tie` a track whose
order ranks tags on different digests equal at the top; `TAG@IMAGE` names the image (digest) a
digest strategy follows. In a retention, `expired` lists the images deleted. Where a documentation
page gives a configuration and what it does but no repository, the case's input is ours and says
so; `t=N s` is a creation time N seconds after 1970-01-01T00:00:00Z.

[flux]: https://fluxcd.io/flux/components/image/imagepolicies/
[argo]: https://argocd-image-updater.readthedocs.io/en/stable/basics/update-strategies/
[kargo]: https://docs.kargo.io/user-guide/how-to-guides/working-with-warehouses
[werf]: https://werf.io/docs/v2/usage/cleanup/cr_cleanup.html
[ecr]: https://docs.aws.amazon.com/AmazonECR/latest/userguide/lifecycle_policy_examples.html
"""

TRANSLATIONS = {
    FLUX: "`filterTags.pattern` is the track's `tags` (its `extract` group the version part: the named group "
          "`version`, else group 1); `semver.range` is `semver` with `strictSemver: false` and `prereleases: "
          "masterminds` (Flux parses tags with Masterminds' NewVersion); `alphabetical` and `numerical` are "
          "`order: alphabetical` and `numeric`, `order: desc` is `descending: true`.",
    ARGO: "`semver` with constraint C (none: `*`, as Argo CD Image Updater substitutes) is `semver: C, "
          "strictSemver: false, prereleases: masterminds`; `newest-build` is `order: newest`; `alphabetical` is "
          "`order: alphabetical`; `digest` of tag T is a track of the literal tag `^T$`; `allowTags: regexp:R` "
          "is `allow: R`; `ignoreTags` globs are `ignore` as one RE2 alternation.",
    KARGO: "`SemVer` is order semver, `semverConstraint` is `semver` (`prereleases: masterminds`), "
           "`strictSemvers` is `strictSemver`; `Lexical` is `order: alphabetical`; `NewestBuild` is `order: "
           "newest`; `Digest` of tag T is `^T$`; `allowTagsRegexes` and `ignoreTagsRegexes` are `allow` and "
           "`ignore` (several: one alternation). A one-tag case is the selector's MatchesTag: the tag is selected "
           "or nothing is.",
    WERF: "`references.branch` is `gitRefs.branches` (a name N as `^N$`, `/re/` as `re`); `references.limit` is "
          "`gitRefs.limit`, `imagesPerReference` is `gitRefs.imagesPerReference` ({last, in, operator} alike; "
          "`last: -1`, no limit, is `last: 1000`, the depth a branch's history is read to). werf maps images to "
          "commits by its own metadata; reconcile by the image's revision label (`revisionLabel: true`). werf "
          "builds each image during its test: created a minute before the cleanup.",
    ECR: "`keepMode: firstMatch`, each rule's `priority` its rulePriority; `tagPrefixList: [p]` is `tags: '^p'`, "
         "`tagPatternList: ['p*']` is `tags: '^p.*$'`; several prefixes or patterns (ECR wants each on one image) are "
         "`withTags: ['^p', '^q']`; `tagStatus: untagged | any` is `tagStatus` (with "
         "`untagged: prune`); `imageCountMoreThan: N` is `last: N, count: images, order: newest, age: pushed`; "
         "`sinceImagePushed: N days` is `newerThan: Nd, age: pushed`. ECR keeps what no rule expires, so every "
         "translation ends with the catch-alls `{tags: '.*'}` (and `{tagStatus: untagged}` where untagged "
         "images are pruned).",
}


def result_of(case: Case) -> str:
    if isinstance(case, SelectionCase):
        return select(case)
    assert isinstance(case, RetentionCase)
    try:
        return retain(case)
    except Exception as e:  # a retention feature that has not landed: shown, not hidden
        return f"error: {type(e).__name__}: {e}"


def computed_verdict(case: Case, result: str) -> str:
    if not case.expressible:
        return NOT_EXPRESSIBLE
    return AGREES if result == case.peer_result else DIFFERS


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def _code(text: str) -> str:
    return "<br>".join(f"`{_cell(line)}`" for line in text.strip("\n").splitlines() if line.strip())


def _source(case: Case) -> str:
    repository = REPOSITORIES.get(case.peer)
    if repository and case.source.startswith(repository + " "):
        return _cell(case.source.removeprefix(repository + " "))
    return _cell(case.source)


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def render() -> str:
    results = {case.id: result_of(case) for case in CASES}
    verdicts = {case.id: computed_verdict(case, results[case.id]) for case in CASES}
    lines = [INTRO, "## Summary", "",
             "| peer | cases | agree | differ | not expressible | expressible and agreeing |",
             "| --- | --- | --- | --- | --- | --- |"]
    for peer in (*PEERS, None):
        chosen = [c for c in CASES if peer is None or c.peer == peer]
        counts = {v: sum(1 for c in chosen if verdicts[c.id] == v) for v in (AGREES, DIFFERS, NOT_EXPRESSIBLE)}
        name = "**all**" if peer is None else f"[{peer}](#{_anchor(peer)})"
        lines.append(f"| {name} | {len(chosen)} | {counts[AGREES]} | {counts[DIFFERS]} | {counts[NOT_EXPRESSIBLE]} "
                     f"| {_percent(counts[AGREES], len(chosen))} |")
    lines += ["", "## Differences, and what is not expressible", ""]
    for case in CASES:
        if verdicts[case.id] != AGREES:
            lines.append(f"- **{_cell(case.id)}** ({verdicts[case.id]}): {case.peer} `{_cell(case.peer_result)}`, "
                         f"reconcile `{_cell(results[case.id])}`. {case.why or 'No explanation: a failure.'}")
    for peer in PEERS:
        lines += ["", f"## {peer}", "", TRANSLATIONS[peer]]
        if peer in REPOSITORIES:
            lines += ["", f"Sources below are files of `{REPOSITORIES[peer]}` unless they are URLs."]
        lines += ["", "| case | source | input | peer configuration | peer result | reconcile policy "
                      "| reconcile result | verdict |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for case in CASES:
            if case.peer != peer:
                continue
            assert isinstance(case, SelectionCase | RetentionCase)
            policy = f"track: {case.policy}" if isinstance(case, SelectionCase) else case.policy
            lines.append(f"| {_cell(case.name)} | {_source(case)} | {_cell(case.input_text())} "
                         f"| {_code(case.peer_config)} | `{_cell(case.peer_result)}` | {_code(policy)} "
                         f"| `{_cell(results[case.id])}` | {verdicts[case.id]} |")
    return "\n".join(lines) + "\n"


def _anchor(peer: str) -> str:
    return peer.lower().replace(" ", "-")


if __name__ == "__main__":
    print(render(), end="")

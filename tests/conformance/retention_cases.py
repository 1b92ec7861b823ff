"""Retention peers: Amazon ECR lifecycle policies and werf cleanup, each deciding which images stay.

Translations, the same for every case of a peer:

- Amazon ECR: a policy is ``keepMode: firstMatch`` (the first rule, by ``priority`` = rulePriority,
  that selects an image decides it; later rules still count it when ranking, as ECR's rules
  "identify them as if they haven't been expired"). ``tagPrefixList: [p]`` is ``tags: '^p'``,
  ``tagPatternList: ['p*']`` is ``tags: '^p.*$'``, and several prefixes or patterns (ECR requires
  each on one image) are ``withTags: ['^p', '^q']``; ``tagStatus: untagged | any`` is ``tagStatus``
  (with ``spec.untagged: prune``, since ECR expires untagged images); ``imageCountMoreThan: N`` is
  ``last: N, count: images, order: newest, age: pushed`` (ECR counts images, by push time);
  ``sinceImagePushed: N days`` is ``newerThan: Nd, age: pushed``. Images no ECR rule expires stay,
  so every translation ends with catch-alls: ``{tags: '.*'}`` and, where untagged images are
  pruned, ``{tagStatus: untagged}``. Images are kept whole (image-level retention, the default).
- werf cleanup ``keepPolicies``: ``references.branch`` is ``gitRefs.branches`` (a name N as
  ``'^N$'``, ``/re/`` as ``re``), ``references.limit`` is ``gitRefs.limit`` and
  ``imagesPerReference`` is ``gitRefs.imagesPerReference`` ({last, in, operator} alike; werf's
  ``last: -1``, no limit, is ``last: 1000``, the depth a branch's history is read to). werf maps
  images to the commits they were built from by its own metadata in the registry; reconcile by
  the image's ``org.opencontainers.image.revision`` label (``revisionLabel: true``). werf's
  Kubernetes and built-within policies are disabled in the tests cited (and ignored here).

The times: ECR's examples say "Pushed: N days ago"; werf's tests date commits with
``git commit --amend --date`` (hours ago) and build every image during the test (created "now",
here 1 minute ago).
"""

from __future__ import annotations

from tests.conformance.model import ECR_REGISTRY, GitRef, Img, RetentionCase

ECR = "Amazon ECR"
WERF = "werf"

ECR_DOC = ("https://docs.aws.amazon.com/AmazonECR/latest/userguide/lifecycle_policy_examples.html (awsdocs/"
           "amazon-ecr-user-guide@9df4699f34b98cb4a9e146aa9ec1c2b50f57f97f doc_source/lifecycle_policy_examples.md)")
DAY = 24.0
CATCH_ALL = """\
  - {priority: 999998, tags: '.*'}
  - {priority: 999999, tagStatus: untagged}"""
CATCH_ALL_TAGGED = "  - {priority: 999999, tags: '.*'}"


def ecr(name: str, section: str, images: tuple[Img, ...], config: str, peer_result: str, keep: str, *,
        untagged: bool = False, **kw: object) -> RetentionCase:
    spec = "keepMode: firstMatch\n" + ("untagged: prune\n" if untagged else "") + "keep:\n" + keep + "\n" + (
        CATCH_ALL if untagged else CATCH_ALL_TAGGED)
    return RetentionCase(ECR, name, f"{ECR_DOC} '{section}'", config, peer_result, spec, registry=ECR_REGISTRY,
                         repository_images=images, **kw)  # type: ignore[arg-type]


def pushed(name: str, days: float, *tags: str) -> Img:
    return Img(name, tags, pushed_hours_ago=days * DAY)


MULTIPLE = (pushed("A", 10, "beta-1", "prod-1"), pushed("B", 9, "beta-2", "prod-2"), pushed("C", 8, "beta-3"))
ALL_B = (pushed("A", 4, "alpha-1", "beta-1"), pushed("B", 3), pushed("C", 2, "alpha-2"),
         # "Pushed: 1 day ago", both: E after D (rule 3 keeps E, the newest), and E not older than one day
         # (rule 2 does not expire it)
         Img("D", ("git hash",), pushed_hours_ago=25), Img("E", (), pushed_hours_ago=23))

ECR_CASES = [
    # the age and count examples give a policy and what it does, no repository: ours illustrate the sentence
    ecr("Filtering on image age: tagged prod*, older than 14 days (repository ours)", "Filtering on image age",
        (pushed("A", 20, "prod-1"), pushed("B", 10, "prod-2"), pushed("C", 30, "dev-1")),
        '{rulePriority: 1, selection: {tagStatus: tagged, tagPatternList: ["prod*"], countType: sinceImagePushed, '
        'countUnit: days, countNumber: 14}, action: {type: expire}}', "expired: A",
        "  - {priority: 1, tags: '^prod.*$', newerThan: 14d, age: pushed}"),
    ecr("Filtering on image age: untagged, older than 14 days (repository ours)", "Filtering on image age",
        (pushed("A", 20), pushed("B", 3), pushed("C", 30, "v1")),
        '{rulePriority: 1, selection: {tagStatus: untagged, countType: sinceImagePushed, countUnit: days, '
        'countNumber: 14}, action: {type: expire}}', "expired: A",
        "  - {priority: 1, tagStatus: untagged, newerThan: 14d, age: pushed}", untagged=True),
    ecr("Filtering on image count: one untagged image (repository ours)", "Filtering on image count",
        (pushed("A", 3), pushed("B", 2), pushed("C", 1), pushed("D", 5, "v1")),
        '{rulePriority: 1, selection: {tagStatus: untagged, countType: imageCountMoreThan, countNumber: 1}, '
        'action: {type: expire}}', "expired: A, B",
        "  - {priority: 1, tagStatus: untagged, last: 1, count: images, order: newest, age: pushed}", untagged=True),
    ecr("Filtering on multiple rules: Example A", "Filtering on multiple rules", MULTIPLE,
        '[{rulePriority: 1, selection: {tagStatus: tagged, tagPrefixList: ["prod"], countType: imageCountMoreThan, '
        'countNumber: 1}}, {rulePriority: 2, selection: {tagStatus: tagged, tagPrefixList: ["beta"], '
        'countType: imageCountMoreThan, countNumber: 1}}] (actions: expire)', "expired: A",
        "  - {priority: 1, tags: '^prod', last: 1, count: images, order: newest, age: pushed}\n"
        "  - {priority: 2, tags: '^beta', last: 1, count: images, order: newest, age: pushed}"),
    ecr("Filtering on multiple rules: Example B", "Filtering on multiple rules", MULTIPLE,
        '[{rulePriority: 1, selection: {tagStatus: tagged, tagPrefixList: ["beta"], countType: imageCountMoreThan, '
        'countNumber: 1}}, {rulePriority: 2, selection: {tagStatus: tagged, tagPrefixList: ["prod"], '
        'countType: imageCountMoreThan, countNumber: 1}}] (actions: expire)', "expired: A, B",
        "  - {priority: 1, tags: '^beta', last: 1, count: images, order: newest, age: pushed}\n"
        "  - {priority: 2, tags: '^prod', last: 1, count: images, order: newest, age: pushed}"),
    ecr("Filtering on multiple tags in a single rule: Example A", "Filtering on multiple tags in a single rule",
        (pushed("A", 12, "alpha-1"), pushed("B", 11, "beta-1"), pushed("C", 10, "alpha-2", "beta-2"),
         pushed("D", 4, "alpha-3"), pushed("E", 3, "beta-3"), pushed("F", 2, "alpha-4", "beta-4")),
        '{rulePriority: 1, selection: {tagStatus: tagged, tagPrefixList: ["alpha", "beta"], '
        'countType: sinceImagePushed, countNumber: 5, countUnit: days}, action: {type: expire}}', "expired: C",
        "  - {priority: 1, withTags: ['^alpha', '^beta'], newerThan: 5d, age: pushed}"),
    ecr("Filtering on multiple tags in a single rule: Example B", "Filtering on multiple tags in a single rule",
        (pushed("A", 10, "alpha-1", "beta-1", "gamma-1"), pushed("B", 9, "alpha-2", "beta-2"),
         pushed("C", 8, "alpha-3", "beta-3", "gamma-2")),
        '{rulePriority: 1, selection: {tagStatus: tagged, tagPrefixList: ["alpha", "beta"], '
        'countType: imageCountMoreThan, countNumber: 1}, action: {type: expire}}', "expired: A, B",
        "  - {priority: 1, withTags: ['^alpha', '^beta'], last: 1, count: images, order: newest, age: pushed}"),
    ecr("Filtering on all images: Example A", "Filtering on all images",
        (pushed("A", 4, "alpha-1"), pushed("B", 3, "beta-1"), pushed("C", 2), pushed("D", 1, "alpha-2")),
        '{rulePriority: 1, selection: {tagStatus: any, countType: imageCountMoreThan, countNumber: 1}, '
        'action: {type: expire}}', "expired: A, B, C",
        "  - {priority: 1, tagStatus: any, last: 1, count: images, order: newest, age: pushed}", untagged=True),
    ecr("Filtering on all images: Example B", "Filtering on all images", ALL_B,
        '[{rulePriority: 1, selection: {tagStatus: tagged, tagPrefixList: ["alpha"], countType: imageCountMoreThan, '
        'countNumber: 1}}, {rulePriority: 2, selection: {tagStatus: untagged, countType: sinceImagePushed, '
        'countUnit: days, countNumber: 1}}, {rulePriority: 3, selection: {tagStatus: any, '
        'countType: imageCountMoreThan, countNumber: 1}}] (actions: expire)', "expired: A, B, D",
        "  - {priority: 1, tags: '^alpha', last: 1, count: images, order: newest, age: pushed}\n"
        "  - {priority: 2, tagStatus: untagged, newerThan: 1d, age: pushed}\n"
        "  - {priority: 3, tagStatus: any, last: 1, count: images, order: newest, age: pushed}", untagged=True),
]

# --- werf -------------------------------------------------------------------------------------

WERF_REPO = "werf/werf@73d8d4ac99352a6b05189cfcfa598ad6e0868197"
WERF_TEST = "test/legacy_e2e/suites/cleanup/cleanup_test.go"
WERF_FIXTURE = "test/legacy_e2e/suites/cleanup/_fixtures/git_history_based_policy/werf.yaml"
WERF_DOC = ("https://werf.io/docs/v2/usage/cleanup/cr_cleanup.html (docs/pages_en/usage/cleanup/cr_cleanup.md of "
            + WERF_REPO + ")")
NOW_BUILT = 1 / 60  # built during the test: a minute ago
SRC = "repo: ./app, revisionLabel: true"


def gitrefs(branches: str, **fields: str) -> str:
    """A keep rule ``gitRefs`` on the source repository ./app, images mapped by their revision label."""
    extra = "".join(f", {key}: {value}" for key, value in fields.items())
    return f"  - gitRefs: {{{SRC}, branches: '{branches}'{extra}}}"


def werf(it: str, policy_set: int | None, images: tuple[Img, ...], git: tuple[GitRef, ...], config: str,
         peer_result: str, keep: str, context: str = "", describe: str = "git history based policy",
         fixture: str = WERF_FIXTURE, **kw: object) -> RetentionCase:
    where = f'{WERF_REPO} {WERF_TEST} Describe "{describe}"{context} It "{it}"'
    where += f" (CLEANUP_POLICY_SET_NUMBER={policy_set} of {fixture})" if policy_set is not None else f" ({fixture})"
    return RetentionCase(WERF, f"{it}" + (f" (policy set {policy_set})" if policy_set is not None else ""), where,
                         config, peer_result, "keep:\n" + keep, repository_images=images, git=git,
                         **kw)  # type: ignore[arg-type]


def built(name: str, commit: str) -> Img:
    """An image werf built during the test from ``commit`` (its tag: werf's content-based stage ID)."""
    return Img(name, (f"stage-{name}",), created_hours_ago=NOW_BUILT, revision=commit)


def branch(name: str, *commits: tuple[str, float]) -> GitRef:
    return GitRef(f"refs/heads/{name}", commits)


TEST_LAST_ALL = gitrefs("^test$", imagesPerReference="{last: 1000}")
LIMIT_REFS = (branch("test1", ("c1", 13)), branch("test2", ("c2", 11)), branch("test3", ("c3", 0)))
LIMIT_IMAGES = (built("image1", "c1"), built("image2", "c2"), built("image3", "c3"))
PER_REF = (branch("test", ("c3", 0), ("c2", 11), ("c1", 13)),)
IMAGES_PER_REF = ' Context "image metadata" Context "keep policies" Context "imagesPerReference.*"'
LIMITS = ' Context "image metadata" Context "keep policies" Context "references.limit.*"'
KEEP = ' Context "image metadata" Context "keep policies"'
META = ' Context "image metadata"'

# werf's default keepPolicies (no keepPolicies in werf.yaml), as its docs list them
WERF_DEFAULTS = "\n".join((
    f"  - gitRefs: {{{SRC}, tags: '.*', limit: {{last: 10}}}}",
    gitrefs(".*", limit="{last: 10, in: 168h, operator: And}",
            imagesPerReference="{last: 2, in: 168h, operator: And}"),
    gitrefs("^(main|master|staging|production)$", imagesPerReference="{last: 2}")))
DEFAULTS_CONFIG = ("keepPolicies: werf's defaults (tag /.*/ limit last 10; branch /.*/ limit {last: 10, in: 168h}, "
                   "imagesPerReference {last: 2, in: 168h}; branch /^(main|master|staging|production)$/ "
                   "imagesPerReference {last: 2})")
PUSHED_AND_LOCAL = (built("image1", "m0"), built("image2", "m1"))  # m1 committed, not pushed

WERF_CASES = [
    werf("should not remove unused stages that was built within 2 hours", None, PUSHED_AND_LOCAL,
         (branch("test_branch", ("m0", 0)),), DEFAULTS_CONFIG + "; keepImagesBuiltWithinLastNHours: 2 (default)",
         "expired: none", WERF_DEFAULTS + "\n  - {newerThan: 2h}", describe="default",
         fixture="test/legacy_e2e/suites/cleanup/_fixtures/cleanup/werf.yaml"),
    werf("should remove unused stages", None, PUSHED_AND_LOCAL, (branch("test_branch", ("m0", 0)),),
         DEFAULTS_CONFIG, "expired: image2", WERF_DEFAULTS),
    werf("should not remove used stages", None, (built("image1", "m0"),), (branch("test_branch", ("m0", 0)),),
         DEFAULTS_CONFIG, "expired: none", WERF_DEFAULTS),
    werf("should work only with remote references", 1, (built("image1", "m0"),), (branch("test", ("m0", 0)),),
         "keepPolicies: [{references: {branch: test}, imagesPerReference: {last: -1}}]; remote branch test",
         "expired: none", TEST_LAST_ALL, META),
    werf("should work only with remote references, after git push origin --delete test", 1,
         (built("image1", "m0"),), (),
         "keepPolicies: [{references: {branch: test}, imagesPerReference: {last: -1}}]; no remote branch test",
         "expired: image1", TEST_LAST_ALL, META),
    werf("should remove image from untracked branch", 1, (built("image1", "m0"),),
         (branch("some_branch", ("m0", 0)),),
         "keepPolicies: [{references: {branch: test}, imagesPerReference: {last: -1}}]; remote branch some_branch",
         "expired: image1", TEST_LAST_ALL, META),
    werf("should keep several images that are related to one commit regardless of the keep policies "
         "(imagesPerReference.last=1)", 9, (built("image1", "m0"), built("image2", "m0")),
         (branch("test", ("m0", 0)),),
         "keepPolicies: [{references: {branch: /.*/}, imagesPerReference: {last: 1}}]", "expired: none",
         gitrefs(".*", imagesPerReference="{last: 1}"), META),
    werf("should remove image by imagesPerReference.last", 2, (built("image1", "m0"),),
         (branch("test", ("m0", 0)),),
         "keepPolicies: [{references: {branch: test}, imagesPerReference: {last: 0}}]", "expired: image1",
         gitrefs("^test$", imagesPerReference="{last: 1}"), KEEP, expressible=False,
         result="expired: none",
         why="imagesPerReference last 0 keeps none of a reference's images (a werf policy switched off); reconcile's "
             "last is at least 1 and a policy has at least one keep rule, so the equivalent is to drop the rule "
             "(here: the policy). The closest rule, last 1, keeps image1."),
    werf("should remove image by imagesPerReference.in (commit 25h ago)", 3, (built("image1", "c"),),
         (branch("test", ("c", 25)),),
         "keepPolicies: [{references: {branch: test}, imagesPerReference: {in: 24h}}]", "expired: image1",
         gitrefs("^test$", imagesPerReference="{in: 24h}"), KEEP,
         result="expired: none",
         why="werf's imagesPerReference.in looks at the commit's date only; reconcile's also counts an image "
             "created less than 'in' ago (or at an unknown time) as within it, failing closed: image1, built a "
             "minute ago from a 25-hour-old commit, is kept (reconcile/plan/git_history.py). werf covers fresh "
             "builds with its own keepImagesBuiltWithinLastNHours, disabled in this test."),
    werf("should remove image by imagesPerReference.in (commit amended to 23h ago, pushed, rebuilt)", 3,
         (built("image2", "c2"),), (branch("test", ("c2", 23)),),
         "keepPolicies: [{references: {branch: test}, imagesPerReference: {in: 24h}}]", "expired: none",
         gitrefs("^test$", imagesPerReference="{in: 24h}"), KEEP),
    werf("should remove image by references.limit.in (head 13h ago)", 4, (built("image1", "c"),),
         (branch("test", ("c", 13)),),
         "keepPolicies: [{references: {branch: test, limit: {in: 12h}}}]", "expired: image1",
         gitrefs("^test$", limit="{in: 12h}"), KEEP),
    werf("should remove image by references.limit.in (head amended to 11h ago, pushed, rebuilt)", 4,
         (built("image2", "c2"),), (branch("test", ("c2", 11)),),
         "keepPolicies: [{references: {branch: test, limit: {in: 12h}}}]", "expired: none",
         gitrefs("^test$", limit="{in: 12h}"), KEEP),
    werf("should remove image by references.limit.in OR references.limit.last", 5, LIMIT_IMAGES, LIMIT_REFS,
         "keepPolicies: [{references: {branch: /.*/, limit: {in: 12h, last: 1, operator: Or}}}]",
         "expired: image1", gitrefs(".*", limit="{in: 12h, last: 1, operator: Or}"),
         LIMITS),
    werf("should remove image by references.limit.in AND references.limit.last", 6, LIMIT_IMAGES, LIMIT_REFS,
         "keepPolicies: [{references: {branch: /.*/, limit: {in: 12h, last: 1, operator: And}}}]",
         "expired: image1, image2",
         gitrefs(".*", limit="{in: 12h, last: 1, operator: And}"), LIMITS),
    werf("should remove image by imagesPerReference.in OR imagesPerReference.last", 7, LIMIT_IMAGES, PER_REF,
         "keepPolicies: [{references: {branch: test}, imagesPerReference: {in: 12h, last: 1, operator: Or}}]",
         "expired: image1",
         gitrefs("^test$", imagesPerReference="{in: 12h, last: 1, operator: Or}"),
         IMAGES_PER_REF, result="expired: none",
         why="as for imagesPerReference.in: reconcile counts image1 (commit 13h ago, built a minute ago) as within "
             "12h by its creation time, so Or keeps it too; werf looks at the commit's date only."),
    werf("should remove image by imagesPerReference.in AND imagesPerReference.last", 8, LIMIT_IMAGES, PER_REF,
         "keepPolicies: [{references: {branch: test}, imagesPerReference: {in: 12h, last: 1, operator: And}}]",
         "expired: image1, image2",
         gitrefs("^test$", imagesPerReference="{in: 12h, last: 1, operator: And}"),
         IMAGES_PER_REF),
    # the documented example: the page says what it keeps; the repository is ours
    RetentionCase(WERF, "docs: priority for a specific reference (master last 5, every branch last 1)",
                  WERF_DOC + " 'Priority for a specific reference'",
                  "keepPolicies: [{references: {branch: /.*/}, imagesPerReference: {last: 1}}, "
                  "{references: {branch: master}, imagesPerReference: {last: 5}}]", "expired: f1, m1",
                  "keep:\n" + gitrefs(".*", imagesPerReference="{last: 1}") + "\n"
                  + gitrefs("^master$", imagesPerReference="{last: 5}"),
                  repository_images=(*(built(f"m{i}", f"mc{i}") for i in range(1, 7)), built("f1", "fc1"),
                                     built("f2", "fc2")),
                  git=(branch("master", *((f"mc{i}", 10 - i) for i in range(6, 0, -1))),
                       branch("feature", ("fc2", 1), ("fc1", 2), ("mc3", 7), ("mc2", 8), ("mc1", 9)))),
]

RETENTION_CASES = ECR_CASES + WERF_CASES

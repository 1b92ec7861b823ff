"""Selection peers: Flux image automation, Argo CD Image Updater and Kargo, each picking one tag.

Every case names its source: the peer's repository at the commit read, the test file and function
(and subtest), or the documentation page. Translations, the same for every case of a peer:

- Flux ImagePolicy: ``filterTags.pattern`` is the track's ``tags`` (its ``extract`` group is the
  version part: reconcile reads the named group ``version``, else group 1); ``policy.semver.range``
  is ``semver`` with ``strictSemver: false`` and ``prereleases: masterminds`` (Flux parses tags with
  Masterminds' NewVersion and checks its constraints); ``alphabetical`` / ``numerical`` are
  ``order: alphabetical`` / ``numeric``, and ``order: desc`` is ``descending: true``.
- Argo CD Image Updater: ``semver`` with a constraint C (none: ``*``, as it substitutes) is
  ``semver: C, strictSemver: false, prereleases: masterminds``; ``newest-build`` is
  ``order: newest``; ``alphabetical`` is ``order: alphabetical``; ``digest`` of tag T is a track of
  the literal tag ``^T$`` (``Track.follows``); ``allowTags: regexp:R`` is ``allow: R`` and
  ``ignoreTags`` globs are ``ignore`` as an RE2 alternation.
- Kargo Warehouse image subscription: ``SemVer`` is order semver with ``semverConstraint`` as
  ``semver`` (``prereleases: masterminds``) and ``strictSemvers`` as ``strictSemver``; ``Lexical`` is
  ``order: alphabetical``; ``NewestBuild`` is ``order: newest``; ``Digest`` of tag T is ``^T$``;
  ``allowTagsRegexes`` / ``ignoreTagsRegexes`` are ``allow`` / ``ignore`` (several as one alternation).
"""

from __future__ import annotations

from tests.conformance.model import ACCEPTED, AMBIGUOUS, NONE, REFUSED, SelectionCase

FLUX = "Flux"
ARGO = "Argo CD Image Updater"
KARGO = "Kargo"

FLUX_REPO = "fluxcd/image-reflector-controller@debe2aaa3a98ad3ca69e178638402a5a0feec4a6"
ARGO_REPO = "argoproj-labs/argocd-image-updater@de2cfec67880a232bbdfce81c985796251be242a"
KARGO_REPO = "akuity/kargo@1c764767ae03bad063531fb443ee2485a972c669"

FLUX_SEMVER = "{tags: '^.*$', semver: '%s', strictSemver: false, prereleases: masterminds}"
ALL = "'^.*$'"


def flux(test: str, subtest: str, tags: tuple[str, ...], config: str, peer_result: str, track: str,
         path: str, **kw: object) -> SelectionCase:
    return SelectionCase(FLUX, f"{test} / {subtest}", f"{FLUX_REPO} {path} {test} \"{subtest}\"", config, peer_result,
                         track, tags=tags, **kw)  # type: ignore[arg-type]


def argo(test: str, subtest: str, tags: tuple[str, ...], config: str, peer_result: str, track: str,
         path: str = "registry-scanner/pkg/image/version_test.go", **kw: object) -> SelectionCase:
    return SelectionCase(ARGO, f"{test} / {subtest}", f"{ARGO_REPO} {path} {test} \"{subtest}\"", config, peer_result,
                         track, tags=tags, **kw)  # type: ignore[arg-type]


def kargo(test: str, subtest: str, tags: tuple[str, ...], config: str, peer_result: str, track: str,
          path: str, **kw: object) -> SelectionCase:
    return SelectionCase(KARGO, f"{test} / {subtest}", f"{KARGO_REPO} {path} {test} \"{subtest}\"", config, peer_result,
                         track, tags=tags, **kw)  # type: ignore[arg-type]


# --- Flux image-reflector-controller -----------------------------------------------------------

SEMVER_GO = "internal/policy/semver_test.go"
ALPHA_GO = "internal/policy/alphabetical_test.go"
NUM_GO = "internal/policy/numerical_test.go"
CONTROLLER_GO = "internal/controller/policy_test.go"
FLUX_DOC = "https://fluxcd.io/flux/components/image/imagepolicies/ (docs/spec/v1/imagepolicies.md of " + FLUX_REPO + ")"

UBUNTU_CALVER = ("16.04", "16.04.1", "16.10", "20.04", "20.10")
UBUNTU_NAMES = ("xenial", "yakkety", "zesty", "artful", "bionic")
STAMPS = ("1606234201", "1606364286", "1606334092", "1606334284", "1606334201")
RFC3339 = ("2021-01-08T21-18-21Z", "2020-05-08T21-18-21Z", "2021-01-08T19-20-00Z", "1990-01-08T00-20-00Z",
           "2023-05-08T00-20-00Z")
FLOATS_ASC = ("47.40896403322944", "-27.8520927455902", "-27.930666514224427", "-31.352485948094568",
              "-50.41072694704882", "-21.962849842263736", "24.71884721436865", "-39.99177354004344",
              "53.47333823144817", "3.2008658570411086")
FLOATS_DESC = ("-65.27202780220686", "57.82948329142309", "22.40184684363291", "-86.36934305697784",
               "-90.29082099756083", "-12.041712603564264", "77.70488240399305", "-38.98425003883552",
               "16.06867070412028", "53.735674335181216")
ALPHA_ASC = "{tags: '^.*$', order: alphabetical}"
ALPHA_DESC = "{tags: '^.*$', order: alphabetical, descending: true}"
NUM_ASC = "{tags: '^.*$', order: numeric}"
NUM_DESC = "{tags: '^.*$', order: numeric, descending: true}"
CONTROLLER_TAGS = ("0.1.0", "0.1.1", "0.2.0", "1.0.0", "1.0.1", "1.0.2", "1.1.0-alpha")
FILTER_TAGS = ("test-0.1.0", "test-0.1.1", "dev-0.2.0", "1.0.0", "1.0.1", "1.0.2", "1.1.0-alpha")

FLUX_CASES = [
    *[flux("TestNewSemVer", f"With valid range {r}", (), f"policy: {{semver: {{range: '{r}'}}}}", ACCEPTED,
           FLUX_SEMVER % r, SEMVER_GO, config_only=True) for r in ("1.0.x", "^1.0", "=1.0.0", "~1.0", ">=1.0",
                                                                   ">0,<2.0")],
    *[flux("TestNewSemVer", f"With invalid range {r!r}", (), f"policy: {{semver: {{range: '{r}'}}}}", REFUSED,
           FLUX_SEMVER % r, SEMVER_GO, config_only=True) for r in ("1.0.0p", "1x", "x1", "-1", "a", "")],
    flux("TestSemVer_Latest", "With valid format", ("1.0.0", "1.0.0.1", "1.0.0p", "1.0.1", "1.2.0", "0.1.0"),
         "policy: {semver: {range: 1.0.x}}", "1.0.1", FLUX_SEMVER % "1.0.x", SEMVER_GO),
    flux("TestSemVer_Latest", "With valid format prefix", ("v1.2.3", "v1.0.0", "v0.1.0"),
         "policy: {semver: {range: 1.0.x}}", "v1.0.0", FLUX_SEMVER % "1.0.x", SEMVER_GO),
    flux("TestSemVer_Latest", "With invalid format prefix", ("b1.2.3", "b1.0.0", "b0.1.0"),
         "policy: {semver: {range: 1.0.x}}", NONE, FLUX_SEMVER % "1.0.x", SEMVER_GO),
    flux("TestSemVer_Latest", "With empty list", (), "policy: {semver: {range: 1.0.x}}", NONE,
         FLUX_SEMVER % "1.0.x", SEMVER_GO),
    flux("TestSemVer_Latest", "With non-matching version list", ("1.2.0",), "policy: {semver: {range: 1.0.x}}",
         NONE, FLUX_SEMVER % "1.0.x", SEMVER_GO),
    flux("TestAlphabetical_Latest", "With Ubuntu CalVer", UBUNTU_CALVER, "policy: {alphabetical: {}}", "20.10",
         ALPHA_ASC, ALPHA_GO),
    flux("TestAlphabetical_Latest", "With Ubuntu CalVer descending", UBUNTU_CALVER,
         "policy: {alphabetical: {order: desc}}", "16.04", ALPHA_DESC, ALPHA_GO),
    flux("TestAlphabetical_Latest", "With Ubuntu code names", UBUNTU_NAMES, "policy: {alphabetical: {}}", "zesty",
         ALPHA_ASC, ALPHA_GO),
    flux("TestAlphabetical_Latest", "With Ubuntu code names descending", UBUNTU_NAMES,
         "policy: {alphabetical: {order: desc}}", "artful", ALPHA_DESC, ALPHA_GO),
    flux("TestAlphabetical_Latest", "With Timestamps", STAMPS, "policy: {alphabetical: {}}", "1606364286",
         ALPHA_ASC, ALPHA_GO),
    flux("TestAlphabetical_Latest", "With Unix Timestamps desc", STAMPS, "policy: {alphabetical: {order: desc}}",
         "1606234201", ALPHA_DESC, ALPHA_GO),
    flux("TestAlphabetical_Latest", "With Unix Timestamps prefix", tuple(f"rel-{s}" for s in STAMPS),
         "policy: {alphabetical: {}}", "rel-1606364286", ALPHA_ASC, ALPHA_GO),
    flux("TestAlphabetical_Latest", "With RFC3339", RFC3339, "policy: {alphabetical: {}}", "2023-05-08T00-20-00Z",
         ALPHA_ASC, ALPHA_GO),
    flux("TestAlphabetical_Latest", "With RFC3339 desc", RFC3339, "policy: {alphabetical: {order: desc}}",
         "1990-01-08T00-20-00Z", ALPHA_DESC, ALPHA_GO),
    flux("TestAlphabetical_Latest", "Empty version list", (), "policy: {alphabetical: {}}", NONE, ALPHA_ASC,
         ALPHA_GO),
    # the test lists 15 twice; a registry holds a tag once
    flux("TestNumerical_Latest", "With unordered list of integers ascending",
         ("-62", "-88", "73", "72", "15", "16", "29", "-33", "-91"), "policy: {numerical: {}}", "73", NUM_ASC,
         NUM_GO),
    flux("TestNumerical_Latest", "With unordered list of integers descending",
         ("5", "-8", "-78", "25", "70", "-4", "80", "92", "-20", "-24"), "policy: {numerical: {order: desc}}",
         "-78", NUM_DESC, NUM_GO),
    flux("TestNumerical_Latest", "With unordered list of floats ascending", FLOATS_ASC, "policy: {numerical: {}}",
         "53.47333823144817", NUM_ASC, NUM_GO),
    flux("TestNumerical_Latest", "With unordered list of floats descending", FLOATS_DESC,
         "policy: {numerical: {order: desc}}", "-90.29082099756083", NUM_DESC, NUM_GO),
    flux("TestNumerical_Latest", "With Unix Timestamps ascending", STAMPS, "policy: {numerical: {}}", "1606364286",
         NUM_ASC, NUM_GO),
    flux("TestNumerical_Latest", "With Unix Timestamps descending", STAMPS, "policy: {numerical: {order: desc}}",
         "1606234201", NUM_DESC, NUM_GO),
    flux("TestNumerical_Latest", "With single value ascending", ("1",), "policy: {numerical: {}}", "1", NUM_ASC,
         NUM_GO),
    flux("TestNumerical_Latest", "With single value descending", ("1",), "policy: {numerical: {order: desc}}", "1",
         NUM_DESC, NUM_GO),
    flux("TestNumerical_Latest", "With invalid numerical value", ("0", "1a", "b"), "policy: {numerical: {}}",
         NONE, NUM_ASC, NUM_GO, result="0",
         why="Flux fails the whole policy when one tag is no number; reconcile passes over the tags an order "
             "cannot rank (1a, b) and ranks the rest, as every order does (policies/README.md, 'Tags an order "
             "cannot rank are passed over for promotion'); a filterTags pattern such as '^[0-9]+$' makes Flux "
             "agree."),
    flux("TestNumerical_Latest", "Empty version list", (), "policy: {numerical: {}}", NONE, NUM_ASC, NUM_GO),
    flux("TestImagePolicyReconciler_calculateImageFromRepoTags", "using SemVerPolicy", CONTROLLER_TAGS,
         "policy: {semver: {range: 1.0.x}}", "1.0.2", FLUX_SEMVER % "1.0.x", CONTROLLER_GO),
    flux("TestImagePolicyReconciler_calculateImageFromRepoTags", "using SemVerPolicy with invalid range",
         CONTROLLER_TAGS, "policy: {semver: {range: '*-*'}}", REFUSED, FLUX_SEMVER % "*-*", CONTROLLER_GO),
    flux("TestImagePolicyReconciler_calculateImageFromRepoTags", "using AlphabeticalPolicy", UBUNTU_NAMES,
         "policy: {alphabetical: {}}", "zesty", ALPHA_ASC, CONTROLLER_GO),
    flux("TestImagePolicyReconciler_filterTags", "valid regex", FILTER_TAGS,
         "filterTags: {pattern: '^test-(.*)$', extract: '$1'}, policy: {semver: {range: '>=0.x'}}", "test-0.1.1",
         "{tags: '^test-(.*)$', semver: '>=0.x', strictSemver: false, prereleases: masterminds}", CONTROLLER_GO),
    flux("TestImagePolicyReconciler_filterTags", "invalid regex", FILTER_TAGS,
         "filterTags: {pattern: '^test-(.*', extract: '$1'}, policy: {semver: {range: '>=0.x'}}", REFUSED,
         "{tags: '^test-(.*', semver: '>=0.x', strictSemver: false, prereleases: masterminds}", CONTROLLER_GO),
    # the documented examples: the page names the configuration and what it selects; the tags are ours
    SelectionCase(FLUX, "docs: semver range 5.1.x (podinfo resolved to 5.1.4)", FLUX_DOC + " 'Example'",
                  "policy: {semver: {range: 5.1.x}}", "5.1.4", FLUX_SEMVER % "5.1.x",
                  tags=("5.0.3", "5.1.0", "5.1.3", "5.1.4", "5.2.0", "6.0.0")),
    SelectionCase(FLUX, "docs: the latest release candidate", FLUX_DOC + " 'Filter Tags'",
                  "filterTags: {pattern: '.*-rc.*'}, policy: {semver: {range: '^1.x-0'}}", "1.2.0-rc.2",
                  "{tags: '.*-rc.*', semver: '^1.x-0', strictSemver: false, prereleases: masterminds}",
                  tags=("1.1.0", "1.2.0-rc.1", "1.2.0-rc.2", "1.2.0", "2.0.0-rc.1")),
    SelectionCase(FLUX, "docs: RELEASE.<RFC3339> timestamps, extracted (minio)", FLUX_DOC + " 'Filter Tags'",
                  "filterTags: {pattern: '^RELEASE\\.(?P<timestamp>.*)Z$', extract: '$timestamp'}, "
                  "policy: {alphabetical: {order: asc}}", "RELEASE.2023-05-04T21-44-30Z",
                  "{tags: '^RELEASE\\.(?P<timestamp>.*)Z$', order: alphabetical}",
                  tags=("RELEASE.2022-12-31T00-00-00Z", "RELEASE.2023-04-28T18-11-17Z",
                        "RELEASE.2023-05-04T21-44-30Z", "latest")),
]

# --- Argo CD Image Updater ----------------------------------------------------------------------

ARGO_TAGS = ("0.1", "0.5.1", "0.9", "1.0", "1.0.1", "1.1.2", "2.0.3")
ARGO_SEMVER = "{tags: '^.*$', semver: '%s', strictSemver: false, prereleases: masterminds}"
# newImageTagListWithDate: the i-th tag is pushed i*5 seconds after the epoch ("yy" twice: a registry
# holds a tag once, the first is kept; the winner is the same either way)
DATED = ("zz", "bb", "yy", "cc", "aa", "ll")
DATED_TIMES = {"zz": 0, "bb": 5, "yy": 10, "cc": 15, "aa": 25, "ll": 30}
ARGO_DOC = "https://argocd-image-updater.readthedocs.io/en/stable/basics/update-strategies/ (docs/basics/" \
           "update-strategies.md of " + ARGO_REPO + ")"
SHA_TAGS = ("a5fb3d3", "f7bb2e3", "latest", "master")
SHA_TIMES = {"a5fb3d3": 100, "f7bb2e3": 200, "latest": 300, "master": 400}
ARGO_CASES = [
    argo("Test_LatestVersion", "Find the latest version without any constraint", ARGO_TAGS, "semver", "2.0.3",
         ARGO_SEMVER % "*"),
    argo("Test_LatestVersion", "Find the latest version with a semver constraint on major", ARGO_TAGS,
         "semver, constraint ^1.0", "1.1.2", ARGO_SEMVER % "^1.0"),
    argo("Test_LatestVersion", "Find the latest version with a semver constraint on patch", ARGO_TAGS,
         "semver, constraint ~1.0", "1.0.1", ARGO_SEMVER % "~1.0"),
    argo("Test_LatestVersion", "Find the latest version with a non-semver current tag and semver constraint",
         ARGO_TAGS, "semver, constraint ^1.0 (running :latest)", "1.1.2", ARGO_SEMVER % "^1.0"),
    argo("Test_LatestVersion", "Find the latest version with a non-semver current tag without any constraint",
         ARGO_TAGS, "semver (running :latest)", "2.0.3", ARGO_SEMVER % "*"),
    argo("Test_LatestVersion", "Find the latest version without any constraint excludes pre-release versions",
         ("v2.2.0", "v2.3.0-rc.0.18.g1abb7b5dd-ppc64le"), "semver", "v2.2.0", ARGO_SEMVER % "*"),
    argo("Test_LatestVersion", "Find the latest version with a semver constraint that has no match",
         ("0.1", "0.5.1", "0.9", "2.0.3"), "semver, constraint ~1.0", NONE, ARGO_SEMVER % "~1.0"),
    argo("Test_LatestVersion", "Find the latest version with a semver constraint that is invalid",
         ("0.1", "0.5.1", "0.9", "2.0.3"), "semver, constraint latest", REFUSED, ARGO_SEMVER % "latest"),
    argo("Test_LatestVersion", "Find the latest version with no tags returns nil", (), "semver, constraint ~1.0",
         NONE, ARGO_SEMVER % "~1.0"),
    argo("Test_LatestVersion", "Find the latest version using latest sortmode", DATED, "newest-build", "ll",
         "{tags: '^.*$', order: newest}", created=DATED_TIMES),
    argo("Test_LatestVersion", "Find the latest version using semver sortmode with invalid tags returns nil", DATED,
         "semver", NONE, ARGO_SEMVER % "*", created=DATED_TIMES),
    argo("Test_LatestVersion", "Find the latest version using VersionConstraint StrategyAlphabetical", DATED,
         "alphabetical", "zz", "{tags: '^.*$', order: alphabetical}", created=DATED_TIMES),
    argo("Test_LatestVersion", "Find the latest version using VersionConstraint StrategyDigest", ("latest",),
         "digest, constraint latest (running latest@sha:1234567)", "latest@abcdefg", "{tags: '^latest$'}",
         images={"latest": "abcdefg"}, show_image=True),
    # IgnoreList globs (filepath.Match) as one RE2 alternation; one tag each: ignored, or selected
    *[argo("Test_VersionConstraint_IsTagIgnored", f"{globs} {tag}", (tag,),
           f"updateStrategy: alphabetical, ignoreTags: {globs}", NONE if ignored else tag,
           f"{{tags: '^.*$', order: alphabetical, ignore: '{regex}'}}") for globs, regex, tag, ignored in (
        ("[tag1, tag2]", "^(tag1|tag2)$", "tag1", True), ("[tag1, tag2]", "^(tag1|tag2)$", "tag2", True),
        ("[tag1, tag2]", "^(tag1|tag2)$", "tag3", False), ("[tag?, foo]", "^(tag.|foo)$", "tag1", True),
        ("[tag?, foo]", "^(tag.|foo)$", "foo", True), ("[tag?, foo]", "^(tag.|foo)$", "tag10", False))],
    *[argo("Test_MatchFuncRegexp", f"Test with valid expression: {tag}", (tag,),
           "updateStrategy: alphabetical, allowTags: 'regexp:[a-z]+'", result, "{tags: '^.*$', order: alphabetical, "
           "allow: '[a-z]+'}", path="registry-scanner/pkg/image/matchfunc_test.go")
      for tag, result in (("lemon", "lemon"), ("31337", NONE))],
    # the last of each sorted list is what a strategy selects
    argo("Test_SortableImageTagList", "Sort by name", ("wohoo", "bazar", "alpha", "jesus", "zebra"),
         "alphabetical", "zebra", "{tags: '^.*$', order: alphabetical}", path="registry-scanner/pkg/tag/tag_test.go"),
    argo("Test_SortableImageTagList", "Sort by semver", ("v2.0.2", "v1.0", "v2.0.0", "v1.0.1", "v2.0.3", "v2.0"),
         "semver", "v2.0.3", ARGO_SEMVER % "*", path="registry-scanner/pkg/tag/tag_test.go"),
    argo("Test_SortableImageTagList", "Sort by date", ("v2.0.2", "v1.0", "v1.0.1", "v2.0.3", "v2.0"),
         "newest-build", "v2.0.2", "{tags: '^.*$', order: newest}", path="registry-scanner/pkg/tag/tag_test.go",
         created={"v2.0.2": 4, "v1.0": 1, "v1.0.1": 0, "v2.0.3": 3, "v2.0": 2}),
    argo("Test_SortableImageTagList", "Sort by date with same dates", ("v2.0.2", "v1.0", "v1.0.1", "v2.0.3", "v2.0"),
         "newest-build", "v2.0.3", "{tags: '^.*$', order: newest}", path="registry-scanner/pkg/tag/tag_test.go",
         created={t: 0 for t in ("v2.0.2", "v1.0", "v1.0.1", "v2.0.3", "v2.0")}, result=AMBIGUOUS,
         why="five images with one build time: Argo CD Image Updater breaks the tie by tag name, reconcile refuses "
             "to guess between different digests and promotes nothing until one ranks first (the plan says: "
             "order by a build number instead). Argo's own docs warn that newest-build cannot decide "
             "reproducible builds; tags on one image are no tie (the case 'several tags on one image')."),
    # the documented examples: the page names the tags and what is (not) selected
    SelectionCase(ARGO, "docs: semver constraint 1.2.x", ARGO_DOC + " 'semver'", "imageName: some/image:1.2.x",
                  "1.2.12", ARGO_SEMVER % "1.2.x", tags=("1.2.5", "1.2.12", "1.3")),
    SelectionCase(ARGO, "docs: semver constraint 1.x", ARGO_DOC + " 'semver'", "imageName: some/image:1.x",
                  "1.15.2", ARGO_SEMVER % "1.x", tags=("1.2.12", "1.3.0", "1.15.2", "2.0")),
    SelectionCase(ARGO, "docs: pre-releases with 2.x-0", ARGO_DOC + " 'semver'", "imageName: some/image:2.x-0",
                  "v2.0-rc1", ARGO_SEMVER % "2.x-0", tags=("1.9.0", "v2.0-rc1")),
    SelectionCase(ARGO, "docs: constraint v1.x matches tag 1.0", ARGO_DOC + " 'semver'",
                  "imageName: some/image:v1.x", "1.0", ARGO_SEMVER % "v1.x", tags=("1.0", "2.0")),
    SelectionCase(ARGO, "docs: constraint 1.x matches tag v1.0", ARGO_DOC + " 'semver'",
                  "imageName: some/image:1.x", "v1.0", ARGO_SEMVER % "1.x", tags=("v1.0", "v2.0")),
    SelectionCase(ARGO, "docs: newest-build, allowTags regexp:^[0-9a-f]{7}$", ARGO_DOC + " 'newest-build'",
                  "updateStrategy: newest-build, allowTags: 'regexp:^[0-9a-f]{7}$'", "f7bb2e3",
                  "{tags: '^.*$', order: newest, allow: '^[0-9a-f]{7}$'}", tags=SHA_TAGS, created=SHA_TIMES),
    SelectionCase(ARGO, "docs: newest-build, ignoreTags [latest, master]", ARGO_DOC + " 'newest-build'",
                  "updateStrategy: newest-build, ignoreTags: [latest, master]", "f7bb2e3",
                  "{tags: '^.*$', order: newest, ignore: '^(latest|master)$'}", tags=SHA_TAGS, created=SHA_TIMES),
    SelectionCase(ARGO, "docs: several tags on one image (f33bacd, dev, latest)", ARGO_DOC + " 'newest-build'",
                  "updateStrategy: newest-build", "latest", "{tags: '^.*$', order: newest}",
                  tags=("f33bacd", "dev", "latest"), images={"f33bacd": "f33bacd", "dev": "f33bacd",
                                                             "latest": "f33bacd"},
                  created={"f33bacd": 100, "dev": 100, "latest": 100}),
    SelectionCase(ARGO, "docs: alphabetical, allowTags regexp:^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                  ARGO_DOC + " 'alphabetical'",
                  "updateStrategy: alphabetical, allowTags: 'regexp:^[0-9]{4}-[0-9]{2}-[0-9]{2}$'", "2024-02-01",
                  "{tags: '^.*$', order: alphabetical, allow: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'}",
                  tags=("2023-12-24", "2024-01-15", "2024-02-01", "nightly", "v9")),
    SelectionCase(ARGO, "docs: digest follows the mutable tag latest", ARGO_DOC + " 'digest'",
                  "imageName: some/image:latest, updateStrategy: digest", "latest@new", "{tags: '^latest$'}",
                  tags=("latest", "1.0.0"), images={"latest": "new", "1.0.0": "old"}, show_image=True),
]

# --- Kargo --------------------------------------------------------------------------------------

PARSER_GO = "pkg/controller/semver/parser_test.go"
SEMVER_SEL_GO = "pkg/image/semver_selector_test.go"
TAG_SEL_GO = "pkg/image/tag_based_selector_test.go"
KARGO_DOC = "https://docs.kargo.io/user-guide/how-to-guides/working-with-warehouses (docs/docs/50-user-guide/" \
            "20-how-to-guides/30-working-with-warehouses.md of " + KARGO_REPO + ")"


def kargo_semver(strict: bool, allow: str | None = None, ignore: str | None = None) -> str:
    extra = "".join(f", {k}: '{v}'" for k, v in (("allow", allow), ("ignore", ignore)) if v)
    return f"{{tags: '^.*$', strictSemver: {str(strict).lower()}{extra}}}"


def parse(subtest: str, tag: str, strict: bool, result: str) -> SelectionCase:
    return kargo("TestParse", subtest, (tag,), f"imageSelectionStrategy: SemVer, strictSemvers: {str(strict).lower()}",
                 result, kargo_semver(strict), PARSER_GO)


def matches(subtest: str, tag: str, result: str, strict: bool = False, allow: str | None = None,
            ignore: str | None = None) -> SelectionCase:
    config = ", ".join([f"imageSelectionStrategy: SemVer, strictSemvers: {str(strict).lower()}"]
                       + ([f"allowTagsRegexes: ['{allow}']"] if allow else [])
                       + ([f"ignoreTagsRegexes: ['{ignore}']"] if ignore else []))
    return kargo("Test_semverSelector_MatchesTag", subtest, (tag,), config, result,
                 kargo_semver(strict, allow, ignore), SEMVER_SEL_GO)


def lexical(subtest: str, tag: str, result: str, allow: str | None = None, ignore: str | None = None) -> SelectionCase:
    config = ", ".join(["imageSelectionStrategy: Lexical"] + ([f"allowTagsRegexes: ['{allow}']"] if allow else [])
                       + ([f"ignoreTagsRegexes: ['{ignore}']"] if ignore else []))
    extra = "".join(f", {k}: '{v}'" for k, v in (("allow", allow), ("ignore", ignore)) if v)
    return kargo("Test_tagBasedSelector_MatchesTag", subtest, (tag,), config, result,
                 f"{{tags: '^.*$', order: alphabetical{extra}}}", TAG_SEL_GO)


NEWEST_HOURS = (0, 1, 5, 24, 8, 2, 7, 3)  # the test's images, each now + N hours; we name their tags build-N
KARGO_CASES = [
    kargo("TestNewSemverSelector", "error parsing semver constraint", (), "constraint: invalid", REFUSED,
          "{tags: '^.*$', semver: 'invalid', prereleases: masterminds}", SEMVER_SEL_GO, config_only=True),
    kargo("TestNewSemverSelector", "success -- with constraint specified", (), "constraint: ^v1.0.0", ACCEPTED,
          "{tags: '^.*$', semver: '^v1.0.0', prereleases: masterminds}", SEMVER_SEL_GO, config_only=True),
    kargo("TestNewSemverSelector", "success -- with no constraint specified", (), "imageSelectionStrategy: SemVer",
          ACCEPTED, "{tags: '^.*$'}", SEMVER_SEL_GO, config_only=True),
    kargo("TestNewTagBasedSelector", "error compiling AllowTagsRegexes", (), "allowTagsRegexes: ['[']", REFUSED,
          "{tags: '^.*$', order: alphabetical, allow: '['}", TAG_SEL_GO, config_only=True),
    kargo("TestNewTagBasedSelector", "error compiling IgnoreTagsRegexes", (), "ignoreTagsRegexes: ['[']", REFUSED,
          "{tags: '^.*$', order: alphabetical, ignore: '['}", TAG_SEL_GO, config_only=True),
    kargo("TestNewTagBasedSelector", "success", (), "allowTagsRegexes: ['^v2\\.'], ignoreTagsRegexes: ['^v1\\.0\\..*']",
          ACCEPTED, "{tags: '^.*$', order: alphabetical, allow: '^v2\\.', ignore: '^v1\\.0\\..*'}", TAG_SEL_GO,
          config_only=True),
    # one tag each: a tag the selector takes is selected, one it refuses leaves nothing
    parse("invalid with strict parsing", "invalid", True, NONE),
    parse("invalid without strict parsing", "invalid", False, NONE),
    parse("valid, but not strictly so, with strict parsing", "1", True, NONE),
    parse("valid, but not strictly so, without strict parsing", "1", False, "1"),
    parse("strictly valid, with strict parsing", "1.0.0", True, "1.0.0"),
    parse("strictly valid, without strict parsing", "1.0.0", False, "1.0.0"),
    parse("strictly valid, with leading v and strict parsing", "v1.0.0", True, "v1.0.0"),
    parse("strictly valid, with leading v, but without strict parsing", "v1.0.0", False, "v1.0.0"),
    matches("non semver ignored", "foo", NONE),
    matches("non strict semver ignored", "v1.0", NONE, strict=True),
    matches("no regex specified", "v1.0.0", "v1.0.0"),
    matches("regex matches", "v1.0.0", "v1.0.0", allow=r"^v1\."),
    matches("regex does not match", "v2.0.0", NONE, allow=r"^v1\."),
    matches("ignored", "v2.0.0", NONE, ignore=r"^v2\.0\.0$"),
    matches("not ignored", "v1.0.0", "v1.0.0", ignore=r"^v2\.0\.0$"),
    matches("regex matches, but ignored", "v1.0.0", NONE, allow=r"^v1\.", ignore=r"^v1\.0\.0$"),
    kargo("Test_semVerSelector_sort", "the first of the sorted list",
          ("5.0.0", "0.0.1", "0.2.1", "0.1.1", "1.1.1", "7.0.6", "1.0.0", "1.0.2"),
          "imageSelectionStrategy: SemVer", "7.0.6", kargo_semver(False), SEMVER_SEL_GO),
    lexical("no regex specified", "abc", "abc"),
    lexical("regex matches", "abc", "abc", allow="[a-z]+"),
    lexical("regex does not match", "123", NONE, allow="[a-z]+"),
    lexical("ignored", "abc", NONE, ignore="^abc$"),
    lexical("not ignored", "123", "123", ignore="^abc$"),
    lexical("regex matches, but ignored", "abc", NONE, allow="[a-z]+", ignore="^abc$"),
    kargo("Test_tagBasedSelector_filterTags", "v1.1.0 is what is left", ("v1.0.0", "v1.1.0", "v2.0.0"),
          "imageSelectionStrategy: Lexical, allowTagsRegexes: ['v1\\.'], ignoreTagsRegexes: ['^v1\\.0\\.0$']",
          "v1.1.0", "{tags: '^.*$', order: alphabetical, allow: 'v1\\.', ignore: '^v1\\.0\\.0$'}", TAG_SEL_GO),
    kargo("Test_newestBuildSelector_sort", "the first of the sorted list", tuple(f"build-{h}" for h in NEWEST_HOURS),
          "imageSelectionStrategy: NewestBuild", "build-24", "{tags: '^.*$', order: newest}",
          "pkg/image/newest_build_selector_test.go", created={f"build-{h}": 3600 * h for h in NEWEST_HOURS}),
    # the documented examples: the page names the configuration and what it selects; the tags are ours
    SelectionCase(KARGO, "docs: SemVer constraint ^1.26.0 (nginx)", KARGO_DOC + " 'Image Selection Strategies'",
                  "constraint: ^1.26.0", "1.27.3",
                  "{tags: '^.*$', semver: '^1.26.0', prereleases: masterminds}",
                  tags=("1.25.4", "1.26.0", "1.27.3", "1.28.0-rc.1", "2.0.0", "latest", "stable")),
    SelectionCase(KARGO, "docs: Lexical, allowTagsRegexes ^nightly-\\d{8}$",
                  KARGO_DOC + " 'Image Selection Strategies'",
                  "imageSelectionStrategy: Lexical, allowTagsRegexes: ['^nightly-\\d{8}$']", "nightly-20240315",
                  "{tags: '^.*$', order: alphabetical, allow: '^nightly-\\d{8}$'}",
                  tags=("nightly-20231231", "nightly-20240315", "nightly-2024031", "latest", "zzz")),
    SelectionCase(KARGO, "docs: Digest, constraint latest", KARGO_DOC + " 'Image Selection Strategies'",
                  "imageSelectionStrategy: Digest, constraint: latest", "latest@new", "{tags: '^latest$'}",
                  tags=("latest", "1.27.3"), images={"latest": "new", "1.27.3": "old"}, show_image=True),
    SelectionCase(KARGO, "docs: NewestBuild, allowTagsRegexes ^nightly", KARGO_DOC + " 'Image Selection Strategies'",
                  "imageSelectionStrategy: NewestBuild, allowTagsRegexes: ['^nightly']", "nightly-b",
                  "{tags: '^.*$', order: newest, allow: '^nightly'}",
                  tags=("nightly-a", "nightly-b", "latest"),
                  created={"nightly-a": 100, "nightly-b": 200, "latest": 300}),
]

SELECTION_CASES = FLUX_CASES + ARGO_CASES + KARGO_CASES

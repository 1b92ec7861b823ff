"""One test per rule of `reconcile validate`, each asserting the exact `file:line: Kind/name: message`.

Every case writes `base.yaml` (a registry and a cluster to refer to) and the case's own
`case.yaml`, then expects exactly the listed problems.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconcile.policy import validate_repo

BASE = """\
apiVersion: reconcile/v1
kind: Registry
metadata: {name: ci}
spec: {url: "https://registry.example.com"}
---
apiVersion: reconcile/v1
kind: Cluster
metadata: {name: prod}
spec: {inCluster: true}
"""

PIPELINE = """\
apiVersion: reconcile/v1
kind: PromotionPolicy
metadata: {{name: web}}
spec:
  stages:
    - {{name: build, registry: ci, repository: ci/web, track: {{tags: '^b-(\\d+)$'}}}}
{stages}"""


def problems(tmp_path: Path, case: str, base: str = BASE) -> list[str]:
    (tmp_path / "base.yaml").write_text(base)
    (tmp_path / "case.yaml").write_text(textwrap.dedent(case))
    return [str(p) for p in validate_repo(str(tmp_path)).problems]


def expect(tmp_path: Path, case: str, *lines: str) -> None:
    root = str(tmp_path)
    assert problems(tmp_path, case) == [line.replace("@", root + "/case.yaml") for line in lines]


def retention(keep: str, extra: str = "") -> str:
    return f"""\
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: r}}
spec:
  registry: ci
  repositories: ["a/*"]
  keep:
{textwrap.indent(textwrap.dedent(keep), "    ")}{extra}"""


def test_the_base_is_valid(tmp_path: Path) -> None:
    assert problems(tmp_path, "") == []


# --- schema -----------------------------------------------------------------------------------


def test_missing_required_field(tmp_path: Path) -> None:
    expect(tmp_path, """\
        apiVersion: reconcile/v1
        kind: RetentionPolicy
        metadata: {name: r}
        spec:
          registry: ci
          keep: [{tags: x}]
        """, "@:4: RetentionPolicy/r: /spec: 'repositories' is a required property")


def test_unknown_field_points_at_the_key_and_lists_what_is_allowed(tmp_path: Path) -> None:
    expect(tmp_path, """\
        apiVersion: reconcile/v1
        kind: Cluster
        metadata: {name: c}
        spec:
          inCluster: true
          contxt: prod
        """, "@:6: Cluster/c: /spec/contxt: unknown field 'contxt'; allowed here: inCluster, kubeconfig, "
             "context, manifests, namespaces, timeout")


def test_wrong_type_and_range(tmp_path: Path) -> None:
    expect(tmp_path, retention("- {tags: x, last: 0}", "\n  maxDeletions: lots\n"),
           "@:8: RetentionPolicy/r: /spec/keep/0/last: 0 is less than the minimum of 1",
           "@:9: RetentionPolicy/r: /spec/maxDeletions: 'lots' is not of type 'integer'")


def test_enum(tmp_path: Path) -> None:
    expect(tmp_path, retention("- tags: x\n  last: 3\n  order: random"),
           "@:10: RetentionPolicy/r: /spec/keep/0/order: 'random' is not one of: semver, numeric, "
           "alphabetical, newest")


def test_unknown_kind_and_api_version(tmp_path: Path) -> None:
    expect(tmp_path, """\
        apiVersion: reconcile/v1
        kind: Registy
        metadata: {name: x}
        spec: {}
        ---
        apiVersion: reconcile/v2
        kind: Cluster
        metadata: {name: c}
        spec: {inCluster: true}
        """,
           "@:2: Registy/x: /kind: unknown kind 'Registy'; expected one of Registry, Cluster, RetentionPolicy, "
           "PromotionPolicy, DeployPolicy, Notification",
           "@:6: Cluster/c: /apiVersion: unsupported apiVersion 'reconcile/v2'; this version reads reconcile/v1")


def test_retry_bounds(tmp_path: Path) -> None:
    expect(tmp_path, """\
        apiVersion: reconcile/v1
        kind: Registry
        metadata: {name: busy}
        spec: {url: "https://r.example.com", retry: {attempts: 0, budget: soon}}
        """, "@:4: Registry/busy: /spec/retry/attempts: 0 is less than the minimum of 1",
           "@:4: Registry/busy: /spec/retry/budget: 'soon' is not a duration: unit 'soon' has no number before it")


def test_invalid_name(tmp_path: Path) -> None:
    expect(tmp_path, """\
        apiVersion: reconcile/v1
        kind: Cluster
        metadata: {name: Prod_EU}
        spec: {inCluster: true}
        """, "@:3: Cluster/Prod_EU: /metadata/name: 'Prod_EU' is not valid here: A name other documents refer "
             "to: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 "
             "characters (a DNS label, as Kubernetes names).")


# --- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["password", "token"])
def test_inline_secret_is_rejected_without_echoing_it(tmp_path: Path, field: str) -> None:
    other = "username: bot\n    " if field == "password" else ""
    found = problems(tmp_path, f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: r}}
spec:
  url: https://r.example.com
  credentials:
    {other}{field}: hunter2-canary
""")
    line = 8 if field == "password" else 7
    assert found == [
        f"{tmp_path}/case.yaml:{line}: Registry/r: /spec/credentials/{field}: a literal value is not allowed in "
        f"'{field}'; reference the secret instead: {field}: {{env: NAME}}, {{file: PATH}} or "
        "{kubernetes: {namespace: NS, name: NAME, key: KEY}}"]
    assert "hunter2" not in "\n".join(found)


def test_secret_in_wrong_places_never_echoed(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        apiVersion: reconcile/v1
        kind: Registry
        metadata: {name: r}
        spec:
          url: https://r.example.com
          credentials: "bob:hunter2-canary"
        ---
        apiVersion: reconcile/v1
        kind: Cluster
        metadata: {name: c}
        spec:
          kubeconfig: {env: KUBECONFIG, value: hunter2-canary}
        """)
    assert "hunter2" not in "\n".join(found)
    assert found == [
        f"{tmp_path}/case.yaml:6: Registry/r: /spec/credentials: must be a mapping of secret references, not a "
        "literal value",
        f"{tmp_path}/case.yaml:12: Cluster/c: /spec/kubeconfig/value: unknown field 'value'; allowed here: env, "
        "file, kubernetes, dockerConfig",
        f"{tmp_path}/case.yaml:12: Cluster/c: /spec/kubeconfig: a secret reference has exactly one of env, file, "
        "kubernetes, dockerConfig",
    ]


# --- names and references ---------------------------------------------------------------------


def test_duplicate_names_per_kind(tmp_path: Path) -> None:
    expect(tmp_path, """\
        apiVersion: reconcile/v1
        kind: Registry
        metadata:
          name: ci
        spec: {url: "https://other.example.com"}
        ---
        apiVersion: reconcile/v1
        kind: Cluster
        metadata: {name: ci}
        spec: {inCluster: true}
        """,
           f"@:4: Registry/ci: /metadata/name: duplicate Registry name 'ci' (first defined at {tmp_path}/base.yaml:3)")


def test_unknown_registry_and_clusters(tmp_path: Path) -> None:
    expect(tmp_path, """\
        apiVersion: reconcile/v1
        kind: RetentionPolicy
        metadata: {name: r}
        spec:
          registry: cii
          repositories: ["a/*"]
          keep: [{tags: x}]
          protect:
            inUse: [prod, staging]
        """,
           "@:5: RetentionPolicy/r: /spec/registry: unknown Registry 'cii'; did you mean 'ci'?",
           "@:9: RetentionPolicy/r: /spec/protect/inUse/1: unknown Cluster 'staging' (known: prod)")


def test_unknown_stage_policy_and_cluster_in_deploy(tmp_path: Path) -> None:
    expect(tmp_path, PIPELINE.format(stages="    - {name: prod, from: build, registry: ci, repository: web, "
                                            "tags: [prod]}\n") + """\
---
apiVersion: reconcile/v1
kind: DeployPolicy
metadata: {name: a}
spec: {stage: web/prd, cluster: prod, namespace: web, workloads: [{kind: Deployment, name: w, container: w}]}
---
apiVersion: reconcile/v1
kind: DeployPolicy
metadata: {name: b}
spec: {stage: api/prod, cluster: prd, namespace: web, workloads: [{kind: Deployment, name: w, container: w}]}
""",
           "@:12: DeployPolicy/a: /spec/stage: unknown stage of PromotionPolicy 'web': 'prd'; did you mean 'prod'?",
           "@:17: DeployPolicy/b: /spec/cluster: unknown Cluster 'prd'; did you mean 'prod'?",
           "@:17: DeployPolicy/b: /spec/stage: unknown PromotionPolicy 'api' (known: web)")


def test_unknown_from_stage_and_healthy_in_policy(tmp_path: Path) -> None:
    expect(tmp_path, PIPELINE.format(stages="""\
    - name: prod
      from: stagin
      registry: ci
      repository: web
      tags: [prod]
      gates: {healthyIn: [staging-web]}
"""),
           "@:8: PromotionPolicy/web: /spec/stages/1/from: unknown stage 'stagin' (known: build, prod)",
           "@:12: PromotionPolicy/web: /spec/stages/1/gates/healthyIn/0: unknown DeployPolicy 'staging-web' "
           "(known: none is defined)")


def test_a_cluster_known_by_manifests_has_no_helm_history_and_takes_no_deploys(tmp_path: Path) -> None:
    expect(tmp_path, PIPELINE.format(stages="    - {name: prod, from: build, registry: ci, repository: web, "
                                            "tags: [prod]}\n") + """\
---
apiVersion: reconcile/v1
kind: Cluster
metadata: {name: gitops}
spec: {manifests: {repo: ./manifests, path: prod}}
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {name: r}
spec: {registry: ci, repositories: [a], keep: [{tags: x}], protect: {inUse: [gitops], helmReleases: [gitops]}}
---
apiVersion: reconcile/v1
kind: DeployPolicy
metadata: {name: d}
spec: {stage: web/prod, cluster: gitops, namespace: web, workloads: [{kind: Deployment, name: w, container: w}]}
""",
           "@:17: RetentionPolicy/r: /spec/protect/helmReleases/0: Cluster 'gitops' is known by its manifests and "
           "has no Helm release history; list it under inUse",
           "@:22: DeployPolicy/d: /spec/cluster: this Cluster is known by its manifests only; deploy through the "
           "manifests repository instead (spec.manifests)")


# --- pipelines --------------------------------------------------------------------------------


def test_cycle_in_pipeline(tmp_path: Path) -> None:
    expect(tmp_path, PIPELINE.format(stages="""\
    - {name: a, from: c, registry: ci, repository: a, tags: [a]}
    - {name: b, from: a, registry: ci, repository: b, tags: [b]}
    - {name: c, from: b, registry: ci, repository: c, tags: [c]}
"""), "@:7: PromotionPolicy/web: /spec/stages/1/from: stages form a cycle: a -> b -> c -> a; a pipeline flows "
      "from its source stage")


def test_unreachable_stage(tmp_path: Path) -> None:
    expect(tmp_path, PIPELINE.format(stages="""\
    - {name: a, from: a, registry: ci, repository: a, tags: [a]}
    - {name: b, from: a, registry: ci, repository: b, tags: [b]}
    - {name: c, registry: ci, repository: c, tags: [c]}
"""),
           "@:7: PromotionPolicy/web: /spec/stages/1/from: stages form a cycle: a -> a; a pipeline flows from its "
           "source stage",
           "@:8: PromotionPolicy/web: /spec/stages/2/from: stage 'b' is unreachable from the source stage 'build'",
           "@:9: PromotionPolicy/web: /spec/stages/3: needs 'from': the stage whose image it promotes (or 'track' "
           "if it is the source)")


def test_pipeline_without_a_source_or_with_two(tmp_path: Path) -> None:
    expect(tmp_path, """\
        apiVersion: reconcile/v1
        kind: PromotionPolicy
        metadata: {name: none}
        spec:
          stages:
            - {name: a, from: b, registry: ci, repository: a, tags: [a]}
            - {name: b, from: a, registry: ci, repository: b, tags: [b]}
        ---
        apiVersion: reconcile/v1
        kind: PromotionPolicy
        metadata: {name: two}
        spec:
          stages:
            - {name: a, registry: ci, repository: a, track: {tags: x}}
            - {name: b, registry: ci, repository: b, track: {tags: x}}
        """,
           "@:5: PromotionPolicy/none: /spec/stages: no stage has 'track': the first stage of a pipeline says "
           "which tags are candidates",
           "@:6: PromotionPolicy/none: /spec/stages/0/from: stages form a cycle: a -> b -> a; a pipeline flows "
           "from its source stage",
           "@:15: PromotionPolicy/two: /spec/stages/1/track: only one stage may track candidates; 'a' already does")


def test_tag_templates(tmp_path: Path) -> None:
    expect(tmp_path, PIPELINE.format(stages="""\
    - {name: s, from: build, registry: ci, repository: s, tags: ["{version}-{sha}", "-{version}"]}
"""),
           "@:7: PromotionPolicy/web: /spec/stages/1/tags/0: unknown placeholder {sha} in '{version}-{sha}'; "
           "use {version}, {stage}, {shortDigest}",
           "@:7: PromotionPolicy/web: /spec/stages/1/tags/1: '-{version}' does not make a valid tag (letters, "
           "digits, '_', '.', '-'; not starting with '.' or '-'; at most 128 characters)")


def test_freeze_windows(tmp_path: Path) -> None:
    expect(tmp_path, PIPELINE.format(stages="""\
    - name: s
      from: build
      registry: ci
      repository: s
      tags: [s]
      gates:
        freeze:
          - {from: "2026-12-21", until: "2026-12-20T00:00:00Z"}
          - {days: [Sat], from: "25:00", until: "23:00", timeZone: Mars/Olympus}
"""),
           "@:14: PromotionPolicy/web: /spec/stages/1/gates/freeze/0/from: '2026-12-21' is not an RFC 3339 "
           "date-time with offset, e.g. 2026-12-20T00:00:00Z (or add days for a weekly window)",
           "@:15: PromotionPolicy/web: /spec/stages/1/gates/freeze/1/from: '25:00' is not a time of day HH:MM "
           "(weekly window)",
           "@:15: PromotionPolicy/web: /spec/stages/1/gates/freeze/1/timeZone: unknown time zone 'Mars/Olympus'; "
           "use an IANA name such as Europe/Berlin")


# --- durations, semver ranges, regular expressions --------------------------------------------


def test_duration_that_does_not_parse(tmp_path: Path) -> None:
    expect(tmp_path, retention("- tags: x\n  newerThan: 1.5d"),
           "@:9: RetentionPolicy/r: /spec/keep/0/newerThan: '1.5d' is not a duration: fractions are not "
           "allowed; use a smaller unit, e.g. 90m instead of 1.5h")


def test_zero_duration_is_valid_and_a_wrong_type_is_reported_once(tmp_path: Path) -> None:
    expect(tmp_path, retention("- {tags: x, newerThan: 0s}\n- {tags: y, newerThan: 7}"),
           "@:9: RetentionPolicy/r: /spec/keep/1/newerThan: 7 is not of type 'string'")


def test_semver_range_that_does_not_parse(tmp_path: Path) -> None:
    expect(tmp_path, retention("- semver: '>=1.2.x.4'"),
           "@:8: RetentionPolicy/r: /spec/keep/0/semver: '>=1.2.x.4' is not a semver range: in '1.2.x.4', more "
           "than three numeric parts")


def test_regex_that_does_not_compile(tmp_path: Path) -> None:
    expect(tmp_path, retention("- tags: '^v(\\d+$'"),
           "@:8: RetentionPolicy/r: /spec/keep/0/tags: '^v(\\d+$' is not a valid RE2 (Go regexp syntax) pattern: "
           "missing ): ^v(\\d+$")


RE2_ONLY = "is not supported: policy patterns are RE2 (Go regexp syntax), which matches in linear time"


def test_regex_that_re2_cannot_take_names_the_construct(tmp_path: Path) -> None:
    expect(tmp_path, retention("- tags: '^(\\d+)-\\1$'\n- tags: '^v(?=\\d)'"),
           f"@:8: RetentionPolicy/r: /spec/keep/0/tags: backreference \\1 in '^(\\d+)-\\1$' {RE2_ONLY}",
           f"@:9: RetentionPolicy/r: /spec/keep/1/tags: lookahead (?=...) in '^v(?=\\d)' {RE2_ONLY}")


def test_regex_everywhere_is_re2(tmp_path: Path) -> None:
    expect(tmp_path, retention("- gitRefs: {repo: ./src, branches: '(?!wip)', tags: 'v\\d++', "
                               "tagCommit: '^(?<=sha-)(?P<commit>[0-9a-f]+)$'}"),
           f"@:8: RetentionPolicy/r: /spec/keep/0/gitRefs/branches: negative lookahead (?!...) in '(?!wip)' "
           f"{RE2_ONLY}",
           f"@:8: RetentionPolicy/r: /spec/keep/0/gitRefs/tagCommit: lookbehind (?<=...) in "
           f"'^(?<=sha-)(?P<commit>[0-9a-f]+)$' {RE2_ONLY}",
           f"@:8: RetentionPolicy/r: /spec/keep/0/gitRefs/tags: possessive quantifier '++' in 'v\\d++' {RE2_ONLY}; "
           "drop the last '+': RE2 never backtracks, so it is not needed")
    stages = "    - {name: prod, from: build, registry: ci, repository: web, tags: [prod]}\n"
    expect(tmp_path, PIPELINE.format(stages=stages).replace(
        "track: {tags: '^b-(\\d+)$'}", "track: {tags: '^b-(\\d+)$', allow: '\\1', ignore: '(?>x)'}"),
           f"@:6: PromotionPolicy/web: /spec/stages/0/track/allow: backreference \\1 in '\\1' {RE2_ONLY}",
           f"@:6: PromotionPolicy/web: /spec/stages/0/track/ignore: atomic group (?>...) in '(?>x)' {RE2_ONLY}; "
           "write (?:...) instead: RE2 never backtracks, so it is not needed")


@pytest.mark.parametrize("pattern", ["(a+)+$", "^(\\w+\\s?)*$", "(a|ab)*c", "^\\d*\\d*\\d*\\d*\\d*\\d*\\d*x$"])
def test_regex_that_would_backtrack_is_fine_in_re2(tmp_path: Path, pattern: str) -> None:
    assert problems(tmp_path, retention(f"- tags: '{pattern}'")) == []


def test_git_refs_needs_a_commit_group(tmp_path: Path) -> None:
    expect(tmp_path, retention("- gitRefs: {repo: ./src, branches: main, tagCommit: '^sha-([0-9a-f]+)$'}"),
           "@:8: RetentionPolicy/r: /spec/keep/0/gitRefs/tagCommit: needs a named group 'commit' capturing the "
           "SHA, e.g. '^sha-(?P<commit>[0-9a-f]{7,40})$'")


# --- hostile YAML -----------------------------------------------------------------------------


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    rows = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        rows.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    # 9**9 strings if expanded: this would exhaust memory without the node budget
    expect(tmp_path, "\n".join(rows) + "\n",
           "@:6: document expands to more than 100000 nodes (an alias bomb?); refusing to read further")


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    expect(tmp_path, "spec: &loop\n  again: *loop\n",
           "@:1: nesting deeper than 64 levels; refusing to read further")


def test_duplicate_keys(tmp_path: Path) -> None:
    expect(tmp_path, """\
        apiVersion: reconcile/v1
        kind: Cluster
        metadata: {name: c}
        spec:
          inCluster: true
          inCluster: false
        """, "@:6: duplicate key 'inCluster' (first on line 5); YAML would silently keep only one of them")


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    expect(tmp_path, "# " + "x" * (1024 * 1024) + "\n",
           "@:1: file is 1048579 bytes, over the limit of 1048576 bytes for a policy file")


def test_nesting_over_the_depth_limit(tmp_path: Path) -> None:
    expect(tmp_path, "apiVersion: reconcile/v1\nspec: " + "[" * 10_000 + "]" * 10_000 + "\n",
           "@:2: nesting deeper than 64 levels; refusing to read further")


def test_non_utf8(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "case.yaml").write_bytes(b"apiVersion: reconcile/v1\nkind: Cluster\nmetadata: {name: caf\xe9}\n")
    assert [str(p) for p in validate_repo(str(tmp_path)).problems] == [
        f"{tmp_path}/case.yaml:3: not valid UTF-8 (byte 0xe9 at offset 59); policy files must be UTF-8"]


def test_yaml_syntax_error_does_not_quote_the_source_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "spec:\n  password: hunter2-canary: x\n")
    assert found == [f"{tmp_path}/case.yaml:2:27: YAML syntax error: mapping values are not allowed here"]


@pytest.mark.parametrize(("text", "where", "message"), [
    ("apiVersion: reconcile/v1\nspec:\n\turl: x\n", "3:1", "tabs are not allowed for indentation in YAML; use spaces"),
    ("spec:\n  keep:\n  \t- last: 3\n", "3:3", "tabs are not allowed for indentation in YAML; use spaces"),
    ("spec:\n  - a\n  -\tb\n", "3:4", "tabs are not allowed for indentation in YAML; use spaces"),
    ("spec:\t{url: x}\n", "1:6", "a tab cannot separate values here (YAML reads only spaces between them); "
                                   "use spaces"),
])
def test_a_tab_is_named_with_its_line_and_column(tmp_path: Path, text: str, where: str, message: str) -> None:
    assert problems(tmp_path, text) == [f"{tmp_path}/case.yaml:{where}: {message}"]


def test_python_tags_are_refused(tmp_path: Path) -> None:
    expect(tmp_path, "spec: !!python/object/apply:os.system ['true']\n",
           "@:1: unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'")


def test_keys_yaml_would_read_as_booleans(tmp_path: Path) -> None:
    expect(tmp_path, "apiVersion: reconcile/v1\nkind: Cluster\nmetadata: {name: c}\nspec: {inCluster: true}\n"
                     "on: 1\n",
           "@:5: Cluster/c: /on: unknown field 'on'; allowed here: apiVersion, kind, metadata, spec",
           "@:5: key 'on' is read as bool, not text; quote it")


# --- everything at once -----------------------------------------------------------------------


def test_five_different_errors_in_one_file_give_five_lines(tmp_path: Path) -> None:
    expect(tmp_path, """\
        apiVersion: reconcile/v1
        kind: RetentionPolicy
        metadata: {name: r}
        spec:
          registry: cii
          repositories: ["a/*"]
          keep:
            - tags: '(x)\\1'
              newerThan: 3 days
            - semver: '>>1'
          maxDeletions: -1
        """,
           "@:5: RetentionPolicy/r: /spec/registry: unknown Registry 'cii'; did you mean 'ci'?",
           "@:8: RetentionPolicy/r: /spec/keep/0/tags: backreference \\1 in '(x)\\1' is not supported: policy "
           "patterns are RE2 (Go regexp syntax), which matches in linear time",
           "@:9: RetentionPolicy/r: /spec/keep/0/newerThan: '3 days' is not a duration: spaces are not allowed "
           "(write e.g. 1h30m)",
           "@:10: RetentionPolicy/r: /spec/keep/1/semver: '>>1' is not a semver range: unknown operator '>>' in "
           "'>>1' (use =, !=, >, >=, <, <=, ~ or ^)",
           "@:11: RetentionPolicy/r: /spec/maxDeletions: -1 is less than the minimum of 0")


def test_example_repo_of_record_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "policies"
    validation = validate_repo(str(example))
    assert validation.problems == ()
    assert validation.policies is not None
    assert validation.policies.counts() == {"Registry": 3, "Cluster": 2, "RetentionPolicy": 1,
                                            "PromotionPolicy": 1, "DeployPolicy": 3}

"""`validate` on keepMode/priority, untagOthers, untagged/tagStatus, count and age (issue 18): each
accepted where it means something, refused (or warned about) with the fix where it would not."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.policy import load_policies
from tests.policy.test_validate_rules import expect, problems, retention

ECR_BASE = """\
apiVersion: reconcile/v1
kind: Registry
metadata: {name: ci}
spec:
  url: "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"
  listing: {api: ecr, region: eu-west-1, credentials: {accessKeyId: {env: AWS_KEY}, secretAccessKey: {env: AWS_SECRET}}}
"""


@pytest.mark.parametrize(("keep", "extra"), [
    ("- {tags: '^prod', last: 1, count: images, order: newest, priority: 1}\n"
     "- {tags: '^beta', last: 1, count: images, order: newest, priority: 2}\n- {tags: '.*'}\n", None),
    ("- {tags: '^v', last: 3, count: images}", ""),
    ("- {tags: '^v', newerThan: 14d, age: pushed}", ""),
    ("- {tagStatus: untagged, last: 2}", "  untagged: prune\n"),
    ("- {tagStatus: any, last: 5, order: newest, age: pushed}", "  untagged: prune\n"),
    ("- {tags: '^v'}", "  untagOthers: true\n"),
    ("- {withTags: ['^alpha', '^beta'], newerThan: 5d, age: pushed}", ""),
])
def test_valid(tmp_path: Path, keep: str, extra: str | None) -> None:
    if extra is None:  # priorities: firstMatch, all of them distinct
        keep, extra = keep.replace("- {tags: '.*'}", "- {tags: '.*', priority: 3}"), "  keepMode: firstMatch\n"
    keep = keep.rstrip("\n") + "\n"
    assert [p for p in problems(tmp_path, retention(keep, extra), base=ECR_BASE) if "warning" in p] == []
    assert problems(tmp_path, retention(keep, extra), base=ECR_BASE) == []


@pytest.mark.parametrize(("keep", "extra", "line"), [
    ("- {tags: '^v', priority: 1}", "",
     "@:8: RetentionPolicy/r: /spec/keep/0/priority: priority orders rules under keepMode: firstMatch only (under "
     "union every rule counts); set keepMode: firstMatch or drop priority"),
    ("- {tags: '^v', priority: 1}\n- {tags: '^b'}", "  keepMode: firstMatch\n",
     "@:9: RetentionPolicy/r: /spec/keep/1: give every keep rule a priority or none (without them, rules decide in "
     "list order)"),
    ("- {tags: '^v', priority: 2}\n- {tags: '^b', priority: 2}", "  keepMode: firstMatch\n",
     "@:9: RetentionPolicy/r: /spec/keep/1/priority: priority 2 is also keep[0]'s: each rule needs its own, or "
     "which decides first is unclear"),
    ("- {tags: '^v', count: images}", "",
     "@:8: RetentionPolicy/r: /spec/keep/0/count: count says what last counts (tags or images); set last or drop it"),
    ("- {tags: '^v', last: 2, age: pushed}", "",
     "@:8: RetentionPolicy/r: /spec/keep/0/age: age says which time newerThan and order newest look at; set "
     "newerThan, or last with order: newest, or drop it"),
    ("- {tagStatus: any, tags: '^v'}", "",
     "@:8: RetentionPolicy/r: /spec/keep/0/tags: tags selects by tag, and tagStatus any selects untagged "
     "manifests too: drop it, or use tagStatus tagged"),
    ("- {tagStatus: any, withTags: ['^a']}", "",
     "@:8: RetentionPolicy/r: /spec/keep/0/withTags: withTags selects by tag, and tagStatus any selects "
     "untagged manifests too: drop it, or use tagStatus tagged"),
    ("- {withTags: ['^a', '(?=b)']}", "",
     "@:8: RetentionPolicy/r: /spec/keep/0/withTags/1: lookahead (?=...) in '(?=b)' is not supported: policy "
     "patterns are RE2 (Go regexp syntax), which matches in linear time"),
    ("- {withTags: []}", "", "@:8: RetentionPolicy/r: /spec/keep/0/withTags: [] should be non-empty"),
    ("- {tagStatus: any, last: 2, order: semver}", "",
     "@:8: RetentionPolicy/r: /spec/keep/0/order: untagged manifests have no tag to order by semver: use order "
     "newest (their creation or push time), or drop order"),
])
def test_fields_that_change_nothing_are_refused(tmp_path: Path, keep: str, extra: str, line: str) -> None:
    expect(tmp_path, retention(keep + "\n", extra), line)


@pytest.mark.parametrize(("keep", "extra", "words"), [
    ("- {tagStatus: untagged, last: 2}", "", "spec.untagged is keep, so every untagged manifest stays"),
    ("- {tags: '^v'}", "  untagged: prune\n", "cannot list untagged manifests"),
    ("- {tags: '^v', newerThan: 7d, age: pushed}", "", "does not say when images were pushed"),
])
def test_warnings_where_the_registry_or_the_spec_makes_a_rule_a_no_op(tmp_path: Path, keep: str, extra: str,
                                                                      words: str) -> None:
    found = problems(tmp_path, retention(keep + "\n", extra))  # the plain Distribution API registry of BASE
    assert len(found) == 1 and "warning" in found[0] and words in found[0], found


def test_the_loader_reads_every_new_field(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(ECR_BASE)
    (tmp_path / "case.yaml").write_text(retention(
        "- {tags: '^prod', last: 1, count: images, order: newest, age: pushed, priority: 2}\n"
        "- {tagStatus: untagged, newerThan: 14d, age: pushed, priority: 1}\n"
        "- {withTags: ['^alpha', '^beta'], priority: 3}\n",
        "  keepMode: firstMatch\n  untagOthers: true\n  untagged: prune\n"))
    policy = load_policies(str(tmp_path)).retention_policies["r"]
    assert (policy.keep_mode, policy.untag_others, policy.untagged) == ("firstMatch", True, "prune")
    first, second, third = policy.keep
    assert [p.pattern for p in third.with_tags] == ["^alpha", "^beta"] and first.with_tags == ()
    assert (first.count, first.age, first.priority, first.tag_status) == ("images", "pushed", 2, "tagged")
    assert (second.tag_status, second.priority) == ("untagged", 1)
    assert [i for i, _ in policy.rules_in_order()] == [1, 0, 2]

"""The retention peers' cases (Amazon ECR lifecycle policies, werf cleanup): reconcile's RetentionPolicy,
loaded from YAML by the real loader, keeps and prunes the images the peer keeps and expires, or, where a
case says why, what reconcile's own docs say it does. They use keepMode firstMatch, rule priority,
image-level retention, count: images, age: pushed, tagStatus and untagged (ECR), and gitRefs
imagesPerReference and limit (werf)."""

from __future__ import annotations

import pytest

from tests.conformance.model import AGREES, RetentionCase, retain
from tests.conformance.retention_cases import RETENTION_CASES


@pytest.mark.parametrize("case", RETENTION_CASES, ids=[f"{c.id} [{c.source}]" for c in RETENTION_CASES])
def test_retention_like_the_peer(case: RetentionCase) -> None:
    assert retain(case) == case.expected, case.why or f"{case.peer}: {case.peer_result}"


@pytest.mark.parametrize("case", RETENTION_CASES, ids=[c.id for c in RETENTION_CASES])
def test_every_case_names_its_source_and_explains_a_difference(case: RetentionCase) -> None:
    assert case.source and case.peer_config and case.policy and case.repository_images
    assert (case.verdict == AGREES) is (not case.why), "a difference (only a difference) carries its explanation"


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in RETENTION_CASES]
    assert len(ids) == len(set(ids))

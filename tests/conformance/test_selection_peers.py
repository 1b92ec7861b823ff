"""The selection peers' cases (Flux, Argo CD Image Updater, Kargo): reconcile's track, loaded from YAML
by the real loader, selects what the peer selects, or, where a case says why, what reconcile's own
docs say it selects."""

from __future__ import annotations

import pytest

from tests.conformance.model import AGREES, SelectionCase, select
from tests.conformance.selection_cases import SELECTION_CASES


@pytest.mark.parametrize("case", SELECTION_CASES, ids=[f"{c.id} [{c.source}]" for c in SELECTION_CASES])
def test_selection_like_the_peer(case: SelectionCase) -> None:
    assert select(case) == case.expected, case.why or f"{case.peer} selects {case.peer_result}"


@pytest.mark.parametrize("case", SELECTION_CASES, ids=[c.id for c in SELECTION_CASES])
def test_every_case_names_its_source_and_explains_a_difference(case: SelectionCase) -> None:
    assert case.source and case.peer_config and case.policy
    assert (case.verdict == AGREES) is (not case.why), "a difference (only a difference) carries its explanation"


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in SELECTION_CASES]
    assert len(ids) == len(set(ids))

"""The one conflict retry every cluster write goes through (deploy, both rollbacks): a 409 starts
the next attempt from a fresh read, MAX_ATTEMPTS conflicts are an error with the count, anything
else is not retried."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reconcile.adapters.cluster.errors import ClusterError, ConflictError, NotFoundError
from reconcile.adapters.cluster.retry import MAX_ATTEMPTS, retry_conflicts

WHAT = "Deployment shop/web"


def conflicting(times: int, calls: list[int]) -> Callable[[int], str]:
    def attempt(number: int) -> str:
        calls.append(number)
        if len(calls) <= times:
            raise ConflictError("prod-eu", "patch deployments: 409 Conflict", status=409)
        return f"done at attempt {number}"

    return attempt


def test_a_conflict_starts_the_next_attempt() -> None:
    calls: list[int] = []
    assert retry_conflicts("prod-eu", WHAT, conflicting(2, calls)) == "done at attempt 3"
    assert calls == [1, 2, 3]


def test_no_conflict_is_one_attempt() -> None:
    calls: list[int] = []
    assert retry_conflicts("prod-eu", WHAT, conflicting(0, calls)) == "done at attempt 1"
    assert calls == [1]


def test_conflicts_to_the_last_attempt_give_up_with_the_count() -> None:
    calls: list[int] = []
    with pytest.raises(ClusterError) as failed:
        retry_conflicts("prod-eu", WHAT, conflicting(MAX_ATTEMPTS, calls))
    assert calls == list(range(1, MAX_ATTEMPTS + 1))
    assert not isinstance(failed.value, ConflictError)
    assert failed.value.status == 409
    assert str(failed.value) == (f"cluster prod-eu: {WHAT} kept changing: {MAX_ATTEMPTS} attempts ended in "
                                 "409 Conflict")


def test_the_last_attempt_may_still_succeed() -> None:
    calls: list[int] = []
    assert retry_conflicts("prod-eu", WHAT, conflicting(MAX_ATTEMPTS - 1, calls)) == f"done at attempt {MAX_ATTEMPTS}"


@pytest.mark.parametrize("error", [NotFoundError("prod-eu", "get deployments: 404 Not Found", status=404),
                                   ClusterError("prod-eu", "Deployment shop/web is paused"),
                                   ValueError("not a cluster error")])
def test_other_errors_are_not_retried(error: Exception) -> None:
    calls: list[int] = []

    def attempt(number: int) -> str:
        calls.append(number)
        raise error

    with pytest.raises(type(error)) as raised:
        retry_conflicts("prod-eu", WHAT, attempt)
    assert raised.value is error
    assert calls == [1]

"""The tests' wait helper says, on a timeout, what a predicate with `explain()` saw then: a
convergence that fails once under CI's load must be understandable from CI's output alone."""

import pytest

from tests.helpers.wait import wait_until


class _Never:
    def __call__(self) -> bool:
        return False

    def explain(self) -> str:
        return "plan: '2 of 3 agents done'"


def test_a_timeout_says_what_an_explaining_predicate_saw():
    with pytest.raises(AssertionError) as failure:
        wait_until(_Never(), 0.05, "convergence")

    assert str(failure.value) == (
        "timed out after 0.05 s waiting for convergence; at the timeout: plan: '2 of 3 agents done'"
    )


def test_a_plain_predicate_times_out_with_what_it_waited_for():
    with pytest.raises(AssertionError) as failure:
        wait_until(lambda: False, 0.05, "the page")

    assert str(failure.value) == "timed out after 0.05 s waiting for the page"

"""Backoff: exponential with full jitter, Retry-After as a floor, a hard ceiling below the visibility timeout."""
from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulfillment import backoff
from fulfillment.backoff import jittered_delay
from fulfillment.settings import RetrySettings


class Extremes(random.Random):
    """A Random whose uniform draws are always the top (or bottom) of the range."""

    def __init__(self, top: bool) -> None:
        super().__init__(0)
        self.top = top

    def uniform(self, a: float, b: float) -> float:
        return b if self.top else a


@pytest.mark.parametrize(("attempt", "ceiling"), [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 256.0),
                                                  (10, 300.0), (50, 300.0)])
def test_the_draw_is_capped_at_base_times_two_to_the_attempt_minus_one(attempt: int, ceiling: float) -> None:
    assert jittered_delay(attempt, base=1.0, cap=300.0, rng=Extremes(top=True)) == ceiling
    assert jittered_delay(attempt, base=1.0, cap=300.0, rng=Extremes(top=False)) == 0.0


@given(attempt=st.integers(min_value=0, max_value=60), base=st.floats(min_value=0.0, max_value=10.0),
       cap=st.floats(min_value=0.0, max_value=600.0), seed=st.integers(min_value=0, max_value=2**32))
def test_the_delay_stays_within_zero_and_the_exponential_bound(attempt: int, base: float, cap: float,
                                                                seed: int) -> None:
    delay = jittered_delay(attempt, base=base, cap=cap, rng=random.Random(seed))

    assert 0.0 <= delay <= min(cap, base * 2 ** max(0, attempt - 1))


def test_draws_are_spread_over_the_whole_range() -> None:
    rng = random.Random(7)

    delays = [jittered_delay(4, base=1.0, cap=300.0, rng=rng) for _ in range(500)]

    assert min(delays) < 1.0 and max(delays) > 7.0
    assert all(0.0 <= delay <= 8.0 for delay in delays)


def test_retry_after_is_a_floor() -> None:
    assert jittered_delay(1, base=1.0, cap=300.0, retry_after=30.0, rng=Extremes(top=True)) == 30.0


def test_a_draw_above_retry_after_is_kept() -> None:
    assert jittered_delay(6, base=1.0, cap=300.0, retry_after=2.0, rng=Extremes(top=True)) == 32.0


def test_a_retry_after_of_zero_or_none_adds_nothing() -> None:
    assert jittered_delay(3, base=1.0, cap=300.0, retry_after=0.0, rng=Extremes(top=False)) == 0.0
    assert jittered_delay(3, base=1.0, cap=300.0, retry_after=None, rng=Extremes(top=False)) == 0.0


@pytest.mark.parametrize("retry_after", [None, 5000.0])
def test_the_ceiling_wins_over_everything(retry_after: float | None) -> None:
    delay = jittered_delay(30, base=10.0, cap=10_000.0, retry_after=retry_after, ceiling=240.0,
                           rng=Extremes(top=True))

    assert delay == 240.0


@given(attempt=st.integers(min_value=0, max_value=40), retry_after=st.none() | st.floats(0.0, 10_000.0),
       ceiling=st.floats(0.0, 1000.0), seed=st.integers(min_value=0, max_value=2**32))
def test_the_ceiling_bounds_the_delay_and_retry_after_the_rest(attempt: int, retry_after: float | None,
                                                               ceiling: float, seed: int) -> None:
    delay = jittered_delay(attempt, base=1.0, cap=300.0, retry_after=retry_after, ceiling=ceiling,
                           rng=random.Random(seed))

    assert delay <= ceiling
    assert delay >= min(ceiling, retry_after or 0.0)


def test_a_seeded_random_gives_the_same_delays() -> None:
    first = [jittered_delay(n, base=1.0, cap=300.0, rng=random.Random(42)) for n in range(1, 10)]
    second = [jittered_delay(n, base=1.0, cap=300.0, rng=random.Random(42)) for n in range(1, 10)]
    other = [jittered_delay(n, base=1.0, cap=300.0, rng=random.Random(43)) for n in range(1, 10)]

    assert first == second
    assert first != other


@pytest.mark.parametrize("attempt_number", [1, 5, 40])
def test_delays_stay_below_the_visibility_timeout(attempt_number: int) -> None:
    policy = RetrySettings(base=60, cap=10_000, visibility_timeout=30)
    for _ in range(50):
        assert backoff.delay(policy, attempt_number, retry_after=1_000) <= 30 - 5

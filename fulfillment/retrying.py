"""When to try a failed task again: exponential backoff with full jitter, as a pure function."""
from __future__ import annotations

import random


def backoff_delay(attempt: int, *, base: float, cap: float, retry_after: float | None = None,
                  ceiling: float | None = None, rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt ``attempt + 1``.

    Full jitter (a uniform draw in ``[0, min(cap, base * 2**(attempt-1))]``) spreads retries of many
    tasks that failed together. The other side's ``Retry-After`` is a floor. *ceiling* bounds the
    result whatever else says — the Redis visibility timeout, past which a waiting task would be
    delivered a second time.
    """
    draw = (rng or random).uniform(0.0, min(cap, base * 2 ** max(0, attempt - 1)))
    delay = max(draw, retry_after or 0.0)
    if ceiling is not None:
        delay = min(delay, ceiling)
    return delay

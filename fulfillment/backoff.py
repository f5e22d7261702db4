"""How long a failed task waits before its next attempt: exponential backoff with full jitter, pure.

:func:`jittered_delay` is the curve itself, every input explicit; :func:`delay` applies a
:class:`~fulfillment.settings.RetrySettings` policy to it. Whether a task is tried again at all is
the task retry path's decision (``worker/retries.py``); the tasks now waiting on one are ops' view
(``fulfillment/waiting_retries.py``).
"""
from __future__ import annotations

import random
from typing import TYPE_CHECKING

from fulfillment import defaults

if TYPE_CHECKING:
    from fulfillment.settings import RetrySettings


def delay(policy: RetrySettings, attempt: int, retry_after: float | None = None, *,
          rng: random.Random | None = None) -> float:
    """Seconds before attempt ``attempt + 1`` under *policy*: jittered backoff, never past the visibility timeout."""
    return jittered_delay(attempt, base=policy.base, cap=policy.cap, retry_after=retry_after,
                          ceiling=policy.visibility_timeout - defaults.VISIBILITY_MARGIN_S, rng=rng)


def jittered_delay(attempt: int, *, base: float, cap: float, retry_after: float | None = None,
                   ceiling: float | None = None, rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt ``attempt + 1``.

    Full jitter (a uniform draw in ``[0, min(cap, base * 2**(attempt-1))]``) spreads retries of many
    tasks that failed together. The other side's ``Retry-After`` is a floor. *ceiling* bounds the
    result whatever else says — the Redis visibility timeout, past which a waiting task would be
    delivered a second time.
    """
    draw = (rng or random).uniform(0.0, min(cap, base * 2 ** max(0, attempt - 1)))
    waited = max(draw, retry_after or 0.0)
    if ceiling is not None:
        waited = min(waited, ceiling)
    return waited

"""When to try a failed delivery again: exponential backoff with a cap, and "full jitter" off by default so
that tests (and operators reading the logs) can predict the schedule."""
from __future__ import annotations

import random
from datetime import timedelta


def next_attempt_delay(attempts: int, *, base_seconds: float = 60, max_seconds: float = 6 * 3600,
                       jitter: bool = False) -> timedelta:
    """The wait after the `attempts`-th failed attempt (1 → base, 2 → 2×base, 3 → 4×base…), at most `max_seconds`.

    With `jitter`, a random share of up to 20 % is added so that many failures do not retry in lockstep.
    Raises ValueError when `attempts` < 1.
    """
    if attempts < 1:
        raise ValueError("attempts starts at 1")
    seconds = min(base_seconds * (2 ** min(attempts - 1, 30)), max_seconds)
    if jitter:
        seconds += random.uniform(0, seconds * 0.2)
    return timedelta(seconds=seconds)

"""A circuit breaker per remote: after repeated failures, stop sending it traffic for a while."""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    """Closed (traffic flows) -> open after `threshold` failures in a row -> half-open after
    `cooldown_s`: one trial request (or probe) decides between closed and open again."""

    def __init__(self, threshold: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.last_error: str | None = None
        self._trial_at: float | None = None  # when the half-open trial was let through

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self.opened_at >= self.cooldown_s else "open"

    def available(self) -> bool:
        """Closed: yes. Open: no. Half-open: yes for one trial at a time (another after a cooldown)."""
        state = self.state
        if state == "closed":
            return True
        if state == "open":
            return False
        now = self._clock()
        if self._trial_at is not None and now - self._trial_at < self.cooldown_s:
            return False
        self._trial_at = now
        return True

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.last_error = None
        self._trial_at = None

    def record_failure(self, error: str) -> None:
        self.failures += 1
        self.last_error = error
        if self.failures >= self.threshold or self.state == "half-open":
            self.opened_at = self._clock()
            self._trial_at = None

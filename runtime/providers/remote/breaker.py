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

    def admits(self) -> bool:
        """Whether a request would get through now, without taking the half-open trial: for health
        reports, which must not spend the one request that decides whether the remote is back."""
        state = self.state
        if state != "half-open":
            return state == "closed"
        return self._trial_at is None or self._clock() - self._trial_at >= self.cooldown_s

    def available(self) -> bool:
        """Closed: yes. Open: no. Half-open: yes for one trial at a time (another after a cooldown).
        A yes in half-open is the trial: only a caller that sends the request may ask."""
        if not self.admits():
            return False
        if self.state == "half-open":
            self._trial_at = self._clock()
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

"""Retrying deliveries to peers: exponential backoff with jitter and per-peer circuit breakers.

Modelled on Mastodon's delivery worker: a failed delivery is retried with growing, jittered
delays, and a peer that keeps failing is "circuit broken" (Mastodon uses Stoplight): after
``threshold`` consecutive failures nobody tries it again until ``cool_down`` has passed; then
one trial request decides whether it is back (closed) or still down (open again). Only
``TransientError`` is retried; any other failure means the request itself was refused, which
says the peer is up, and is raised at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from federation.errors import FederationError

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class TransientError(FederationError):
    """A delivery failed in a way that may pass: the peer is down, overloaded or unreachable."""

    default_reason = "unavailable"

    def __init__(
        self, message: str, *, reason: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class CircuitOpen(FederationError):
    """A peer failed too often; nothing is sent to it until its cool-down has passed."""

    default_reason = "circuit_open"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryFailed(FederationError):
    """A delivery still failed after every attempt."""

    default_reason = "delivery_failed"


class Backoff:
    """Exponential delays with "equal jitter": half fixed, half random, capped."""

    def __init__(
        self,
        *,
        base: float = 0.5,
        factor: float = 2.0,
        cap: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0 or factor < 1 or cap < base:
            raise ValueError("backoff needs base > 0, factor >= 1 and cap >= base")
        self.base = base
        self.factor = factor
        self.cap = cap
        self._rng = rng or random.Random()

    def delay(self, attempt: int) -> float:
        """Return the delay before retry number attempt (0 for the first retry)."""
        # Jitter spreads the reconnects of many hubs after a gateway restart; keeping half
        # of the delay fixed still makes it grow, so a dead peer is not hammered.
        ceiling = min(self.cap, self.base * self.factor ** min(attempt, 64))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)


class CircuitBreaker:
    """Closed until threshold consecutive failures; then open for cool_down; then one trial."""

    def __init__(
        self,
        *,
        threshold: int = 5,
        cool_down: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or cool_down < 0:
            raise ValueError("a circuit breaker needs threshold >= 1 and cool_down >= 0")
        self.threshold = threshold
        self.cool_down = cool_down
        self._clock = clock
        self.failures = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> str:
        """Return "closed", "open" or "half_open"."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cool_down:
            return "half_open"
        return "open"

    def retry_after(self) -> float:
        """Return the seconds until a trial request is allowed (0 when allowed now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.cool_down - self._clock())

    def allow(self) -> bool:
        """Tell whether a request may be sent now."""
        return self.state != "open"

    def record_success(self) -> None:
        """Close the circuit: the peer answered."""
        if self._opened_at is not None:
            log.info("circuit closed again after %s failures", self.failures)
        self.failures = 0
        self._opened_at = None

    def record_failure(self) -> None:
        """Count a failure; open (or re-open) the circuit at the threshold."""
        self.failures += 1
        if self.failures >= self.threshold:
            # A failed trial in half-open state re-opens for a whole new cool-down.
            self._opened_at = self._clock()


class Delivery:
    """Sends to peers with retries, backoff and one circuit breaker per peer."""

    def __init__(
        self,
        *,
        max_attempts: int = 5,
        backoff: Backoff | None = None,
        threshold: int = 5,
        cool_down: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self._threshold = threshold
        self._cool_down = cool_down
        self._clock = clock
        self._sleep = sleep
        self._breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, peer: str) -> CircuitBreaker:
        """Return the circuit breaker of a peer (an origin such as https://host:port)."""
        breaker = self._breakers.get(peer)
        if breaker is None:
            breaker = CircuitBreaker(
                threshold=self._threshold, cool_down=self._cool_down, clock=self._clock
            )
            self._breakers[peer] = breaker
        return breaker

    async def send(self, peer: str, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """Run attempt until it succeeds, retrying transient failures with backoff."""
        breaker = self.breaker(peer)
        last: TransientError | None = None
        for number in range(self.max_attempts):
            if not breaker.allow():
                raise CircuitOpen(
                    f"{peer} failed {breaker.failures} times in a row; not trying again for "
                    f"{breaker.retry_after():.0f} s",
                    retry_after=breaker.retry_after(),
                )
            try:
                result = await attempt()
            except TransientError as err:
                breaker.record_failure()
                last = err
                log.info("delivery to %s failed (attempt %s): %s", peer, number + 1, err)
                if number + 1 < self.max_attempts:
                    delay = self.backoff.delay(number)
                    if err.retry_after is not None:
                        delay = max(delay, err.retry_after)
                    await self._sleep(delay)
                continue
            except FederationError:
                # The peer answered and refused: it is up, so the circuit stays closed.
                breaker.record_success()
                raise
            breaker.record_success()
            return result
        assert last is not None
        raise DeliveryFailed(
            f"delivery to {peer} failed {self.max_attempts} times; last error: {last}",
        ) from last

"""The Redis circuit breaker's state machine (a fake clock; no servers needed)."""

from __future__ import annotations

from cachedapp.redisconn import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_then_probes_once():
    clock = Clock()
    breaker = CircuitBreaker(failures=3, cooldown=2.0, clock=clock)
    breaker.failure()
    breaker.success()  # a success resets the count
    breaker.failure()
    breaker.failure()
    assert breaker.allow()
    assert breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    clock.now += 2.0
    assert breaker.state == "half-open"
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one probe at a time
    breaker.success()
    assert breaker.state == "closed"
    assert breaker.allow()


def test_failed_probe_reopens_for_a_full_cooldown():
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown=1.0, clock=clock)
    breaker.failure()
    clock.now += 1.5
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "open"
    clock.now += 0.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()

"""The breaker stops calls after repeated failures, lets one through after the pause, and closes on
success."""
from __future__ import annotations

from lib_orchestrator.enhance.breaker import Breaker


def test_opens_after_failures_in_a_row_then_lets_one_call_through_after_the_pause():
    now = [0.0]
    breaker = Breaker(failures_to_open=3, open_seconds=60, clock=lambda: now[0])
    for _ in range(2):
        breaker.failed("connection refused")
        assert breaker.blocked() is None
    breaker.failed("connection refused")
    assert breaker.blocked() == "LLM server skipped for 60 s after 3 failures (connection refused)"
    now[0] = 59.0
    assert breaker.blocked() is not None
    now[0] = 61.0
    assert breaker.blocked() is None  # one try
    breaker.failed("timeout")
    assert breaker.blocked() is not None  # failed again: open at once, for another pause
    now[0] = 200.0
    breaker.succeeded()
    assert breaker.blocked() is None
    breaker.failed("500")
    assert breaker.blocked() is None  # the count started over

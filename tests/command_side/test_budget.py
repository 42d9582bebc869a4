"""The per-VPS ingest budget: fit, pace, refuse; reconnecting does not refill it."""

from __future__ import annotations

import pytest

from command_side.budget import BURST_S, MAX_PACING_S, IngestBudget


def test_the_rate_follows_the_sampling_interval_with_headroom() -> None:
    budget = IngestBudget.for_config(collect_interval_s=5, headroom=50, min_burst=100)
    assert budget.rate_per_s == 10
    assert budget.burst == 10 * BURST_S
    assert IngestBudget.for_config(1, 1, min_burst=1000).burst == 1000  # one max batch fits


def test_a_batch_that_fits_goes_through_a_short_one_is_paced_a_long_one_refused() -> None:
    budget = IngestBudget(rate_per_s=10, burst=100)
    start = budget._updated
    assert budget.admit(100, start).pace_s == 0
    paced = budget.admit(10, start)
    assert paced.pace_s == pytest.approx(1.0)
    assert not paced.refused
    refused = budget.admit(50, start)
    assert refused.refused
    assert refused.retry_after_s == pytest.approx(6.0)  # 10 owed, then 50 more at 10/s
    assert refused.retry_after_s > MAX_PACING_S
    later = budget.admit(50, start + 6.0)  # refilled meanwhile
    assert not later.refused
    assert later.pace_s == pytest.approx(0.0)


def test_resize_keeps_what_was_spent() -> None:
    budget = IngestBudget(rate_per_s=10, burst=300)
    budget.admit(300, budget._updated)
    budget.resize(IngestBudget(rate_per_s=1, burst=30))
    assert budget.tokens <= 30
    assert budget.admit(30, budget._updated).refused

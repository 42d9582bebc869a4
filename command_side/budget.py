"""Per-VPS ingest budget: one agent cannot take the command side from the others.

A token bucket of snapshots per VPS, sized from the AgentConfig the server
pushed: an agent that samples every ``c`` seconds may send ``headroom / c``
snapshots a second (headroom for replaying a spool after an outage) with a
burst of ``BURST_S`` seconds of that. A batch that fits goes through; one
that would fit after a short wait is paced (the stream is simply not read
meanwhile); one that needs longer is refused, and the stream ends with
RESOURCE_EXHAUSTED and a retry-after. The bucket belongs to the VPS, not to
the stream, so reconnecting does not refill it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Seconds of the allowed rate a full bucket holds.
BURST_S = 30.0
# A batch that is short of tokens by at most this long is paced, not refused.
MAX_PACING_S = 2.0


@dataclass
class Admission:
    """What to do with one batch: wait ``pace_s`` then take it, or refuse it."""

    pace_s: float = 0.0
    refused: bool = False
    retry_after_s: float = 0.0


@dataclass
class IngestBudget:
    rate_per_s: float
    burst: float
    tokens: float = field(init=False)
    _updated: float = field(init=False, default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    @classmethod
    def for_config(cls, collect_interval_s: int, headroom: float, min_burst: int) -> IngestBudget:
        rate = headroom / max(collect_interval_s, 1)
        return cls(rate, max(rate * BURST_S, float(min_burst)))

    def resize(self, other: IngestBudget) -> None:
        """A new AgentConfig: new rate and burst, the tokens spent stay spent."""
        self._refill(time.monotonic())
        self.rate_per_s = other.rate_per_s
        self.burst = other.burst
        self.tokens = min(self.tokens, self.burst)

    def admit(self, snapshots: int, now: float | None = None) -> Admission:
        moment = time.monotonic() if now is None else now
        self._refill(moment)
        short = snapshots - self.tokens
        wait = max(short, 0.0) / self.rate_per_s
        if snapshots > self.burst or wait > MAX_PACING_S:
            return Admission(refused=True, retry_after_s=max(wait, 1.0))
        self.tokens -= snapshots  # may dip below 0 by what pacing waits for
        return Admission(pace_s=wait)

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now

"""The agent's own counters, gathered in one object and each named and described once.

The agent stays light (no prometheus_client): these are plain integers that
the client, the spool and the sampling loop increment; `counters()` gives
them with Prometheus-style names and help, ready for whatever exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

PREFIX = "vpsmon_agent_"


def _counter(help_text: str) -> int:
    value: int = field(default=0, metadata={"help": help_text})
    return value


@dataclass
class AgentStats:
    connects: int = _counter("Streams to the server that completed the handshake.")
    batches_sent: int = _counter("Batches written to the stream (re-sends included).")
    batches_acked: int = _counter("Batch acks received; an acked batch leaves the spool.")
    duplicates: int = _counter("Acks saying the batch was already stored (a re-send).")
    snapshots_rejected: int = _counter("Snapshots the server refused (invalid or repeated).")
    heartbeats_sent: int = _counter("Heartbeats written while the stream was idle.")
    sampling_failures: int = _counter("Samples that failed (the tick produced no snapshot).")
    ticks_skipped: int = _counter("Sampling ticks skipped because the agent fell behind.")
    batches_lost: int = _counter("Batches dropped from memory because the spool refused them.")
    spool_dropped: int = _counter("Oldest unsent batches dropped to keep the spool's bound.")
    spool_corrupt: int = _counter("Corrupt spool files moved aside instead of sent.")

    def counters(self) -> list[tuple[str, str, int]]:
        """(name, help, value) of every counter, in declaration order."""
        return [
            (f"{PREFIX}{f.name}_total", f.metadata["help"], getattr(self, f.name))
            for f in fields(self)
        ]

"""Durations such as ``90s``, ``15m``, ``6h``, ``14d``, ``2w`` in settings and URLs."""

from __future__ import annotations

import re
from datetime import timedelta

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(rf"^\s*(\d+)\s*([{''.join(UNIT_SECONDS)}])\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse ``<whole number><unit>``; raise ValueError naming the accepted form otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"invalid duration {text!r}: expected a whole number and a unit "
            "(s, m, h, d or w), e.g. '15m' or '14d'"
        )
    amount, unit = int(match.group(1)), match.group(2)
    if amount <= 0:
        raise ValueError(f"invalid duration {text!r}: must be greater than zero")
    return timedelta(seconds=amount * UNIT_SECONDS[unit])


def format_duration(value: timedelta) -> str:
    """Inverse of parse_duration, using the largest unit that divides the value."""
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % UNIT_SECONDS[unit] == 0:
            return f"{seconds // UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"

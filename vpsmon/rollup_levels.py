"""The rollup resolutions: one table that storage policies, both backends'
maintenance code, the rollup SQL generator and the timeseries queries read.

It sits in the core (below projections and the sides) and imports only the
standard library, so every layer may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# date_bin's origin in the views; any UTC midnight gives the same buckets.
BUCKET_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
# BUCKET_ORIGIN as SQL, for the generated rollups and the queries that rebin them.
BUCKET_ORIGIN_SQL = f"TIMESTAMPTZ '{BUCKET_ORIGIN:%Y-%m-%d %H:%M:%S}+00'"


def bucket_floor(moment: datetime, width: timedelta) -> datetime:
    """Start of the ``width`` bucket that holds ``moment`` on the views' grid
    (``date_bin(width, moment, BUCKET_ORIGIN)``); any width, not only a level's."""
    return BUCKET_ORIGIN + ((moment - BUCKET_ORIGIN) // width) * width


@dataclass(frozen=True)
class RollupLevel:
    name: str
    width: timedelta
    view: str
    # The relation this level is aggregated from, whose retention bounds how
    # far back it can be recomputed.
    source: str
    # Buckets are materialized only once they ended this long ago. Rows that
    # arrive later (a spool replay) take the slower late-row path; a margin of
    # minutes keeps ordinary upload delays off it. The views show everything
    # newer from the level below, so this costs no freshness.
    end_offset: timedelta

    def materialize_until(self, now: datetime) -> datetime:
        return self.floor(now - self.end_offset)

    def floor(self, moment: datetime) -> datetime:
        """Start of the bucket that holds ``moment``."""
        return bucket_floor(moment, self.width)

    def ceil(self, moment: datetime) -> datetime:
        start = self.floor(moment)
        return start if start == moment else start + self.width


LEVELS = (
    RollupLevel(
        "1m",
        timedelta(minutes=1),
        "performance_metrics_1m",
        "performance_metrics",
        timedelta(minutes=5),
    ),
    RollupLevel(
        "5m",
        timedelta(minutes=5),
        "performance_metrics_5m",
        "performance_metrics_1m",
        timedelta(minutes=10),
    ),
    RollupLevel(
        "1h",
        timedelta(hours=1),
        "performance_metrics_1h",
        "performance_metrics_5m",
        timedelta(hours=1),
    ),
)

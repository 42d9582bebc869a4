"""The data layer of ``GET /api/vps/{id}/metrics/timeseries``.

A request is planned first (interval, bucket width, which rollup view to read,
how many buckets) so that every bad input is an :class:`IntervalError` before
the database is touched, then fetched with one parametrized statement.

Buckets are aligned like ``date_bin(width, t, TIMESTAMPTZ '2000-01-01Z')``: the
rollup views use the same grid, so any width that is a whole multiple of a
view's width is an exact union of that view's buckets, and re-aggregating
sums, counts, minima and maxima gives the same numbers as aggregating the raw
rows (averages are recomputed from sums, never averaged).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vpsmon.durations import format_duration, parse_duration
from vpsmon.errors import IntervalError
from vpsmon.metrics import METRICS
from vpsmon.rollup_levels import BUCKET_ORIGIN_SQL, LEVELS, RollupLevel, bucket_floor
from vpsmon.storage.types import Queryable

# Every width must be a whole number of the finest rollup's buckets.
_FINEST = LEVELS[0].width

# Coarser buckets than a week are not offered: date_bin has no calendar
# months, so "30d" buckets would drift against the months users expect, and a
# week is already the top of the auto ladder (a year is 53 points).
MAX_WIDTH = timedelta(days=7)

# "auto" picks the finest of these that fits the range in auto_target buckets.
# Round, human-friendly steps; each is a whole multiple of a rollup width.
AUTO_LADDER: tuple[timedelta, ...] = tuple(
    parse_duration(text)
    for text in ("1m", "5m", "10m", "15m", "30m", "1h", "2h", "3h", "6h", "12h", "1d", "7d")
)

ALLOWED_INTERVALS = (
    "interval must be 'auto' or a whole number of minutes, hours, days or weeks "
    f"from 1m to {format_duration(MAX_WIDTH)}, e.g. 1m, 5m, 15m, 1h, 6h or 1d"
)


@dataclass(frozen=True)
class TimeseriesPlan:
    """What one timeseries request reads: computed up front so it can be validated and logged."""

    interval: str  # canonical label, e.g. "15m", "6h", "1d"
    width: timedelta
    source: str  # the rollup view read
    start: datetime
    end: datetime

    @property
    def first_bucket(self) -> datetime:
        """Start of the bucket that holds ``start``: a partial first bucket is shown whole."""
        return bucket_floor(self.start, self.width)

    @property
    def bucket_count(self) -> int:
        return bucket_count(self.start, self.end, self.width)


def bucket_count(start: datetime, end: datetime, width: timedelta) -> int:
    """How many buckets start in [floor(start), end): the most points a response can have."""
    return -(-(end - bucket_floor(start, width)) // width)


def _source_for(width: timedelta) -> RollupLevel:
    """The coarsest rollup whose buckets tile ``width`` exactly: fewest rows to read."""
    for level in reversed(LEVELS):
        if width % level.width == timedelta(0):
            return level
    raise IntervalError(ALLOWED_INTERVALS)


def _parse_width(interval: str) -> timedelta:
    try:
        width = parse_duration(interval)
    except ValueError:
        raise IntervalError(f"invalid interval {interval!r}: {ALLOWED_INTERVALS}") from None
    if width % _FINEST != timedelta(0) or width > MAX_WIDTH:
        raise IntervalError(f"invalid interval {interval!r}: {ALLOWED_INTERVALS}")
    return width


def _auto_width(start: datetime, end: datetime, target: int) -> timedelta:
    """The finest ladder step with at most ``target`` buckets; the coarsest if none fits."""
    for width in AUTO_LADDER:
        if bucket_count(start, end, width) <= target:
            return width
    return AUTO_LADDER[-1]


def _as_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise IntervalError(f"{name} must include a time zone offset")
    return moment.astimezone(UTC)


def plan_timeseries(
    interval: str,
    start: datetime,
    end: datetime,
    *,
    max_buckets: int = 10_000,
    auto_target: int = 500,
) -> TimeseriesPlan:
    """Validate a request and choose its bucket width and rollup view.

    ``max_buckets`` bounds the response size (and the work) of one request;
    ``auto_target`` is about what a chart can show, hence much smaller.
    """
    start = _as_utc(start, "start_time")
    end = _as_utc(end, "end_time")
    if start >= end:
        raise IntervalError("start_time must be before end_time")
    text = interval.strip()
    auto = text.lower() == "auto"
    width = _auto_width(start, end, auto_target) if auto else _parse_width(text)
    count = bucket_count(start, end, width)
    if count > max_buckets:
        raise IntervalError(
            f"too many buckets ({count} > {max_buckets}); "
            "choose a coarser interval or a shorter range"
        )
    return TimeseriesPlan(format_duration(width), width, _source_for(width).view, start, end)


def _direct_sql(view: str) -> str:
    columns = ", ".join(f"{m}_avg, {m}_min, {m}_max" for m in METRICS)
    return (
        f"SELECT bucket AS time, samples, {columns} FROM {view}"
        " WHERE vps_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket"
    )


def _rebinned_sql(view: str) -> str:
    # sum(samples) of a bigint is numeric; the casts give the Python types of
    # the views' own columns (int samples, float averages).
    columns = ", ".join(
        f"(sum({m}_sum) / sum(samples))::float8 AS {m}_avg,"
        f" min({m}_min) AS {m}_min, max({m}_max) AS {m}_max"
        for m in METRICS
    )
    return (
        "SELECT date_bin($4::interval, bucket,"
        f" {BUCKET_ORIGIN_SQL}) AS time,"
        f" sum(samples)::bigint AS samples, {columns} FROM {view}"
        " WHERE vps_id = $1 AND bucket >= $2 AND bucket < $3 GROUP BY 1 ORDER BY 1"
    )


# The only text interpolated into SQL: view names and the bucket origin, from the
# fixed rollup levels.
_DIRECT_SQL = {level.view: _direct_sql(level.view) for level in LEVELS}
_REBINNED_SQL = {level.view: _rebinned_sql(level.view) for level in LEVELS}
_VIEW_WIDTHS = {level.view: level.width for level in LEVELS}


async def fetch_timeseries(
    conn: Queryable, vps_id: int, plan: TimeseriesPlan
) -> list[dict[str, object]]:
    """One point per bucket with data, ascending: time, samples and M_avg/M_min/M_max.

    Reads whole source buckets from the first bucket's start to the end of the
    bucket that holds ``end``, so the first and last points cover their whole
    bucket, exactly as when the view's own buckets are returned.
    """
    source_width = _VIEW_WIDTHS.get(plan.source)
    if source_width is None or plan.width % source_width != timedelta(0):
        raise ValueError(f"plan reads {plan.source!r}, which cannot serve {plan.interval}")
    lower = plan.first_bucket
    upper = lower + plan.bucket_count * plan.width
    if plan.width == source_width:
        rows = await conn.fetch(_DIRECT_SQL[plan.source], vps_id, lower, upper)
    else:
        rows = await conn.fetch(_REBINNED_SQL[plan.source], vps_id, lower, upper, plan.width)
    return [dict(row.items()) for row in rows]

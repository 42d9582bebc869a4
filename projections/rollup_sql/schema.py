"""What a generated rollup migration is rendered from, and the names it gives relations.

A :class:`RollupSchema` is the state after a migration: the rollup levels
and the metric groups the user-facing views show. Each group has one
relation per level in the schema vpsmon_rollups: a table on plain
PostgreSQL, a continuous aggregate on TimescaleDB. The first group is the one
0002 created by hand; its relations keep the names 0002 gave them
(``data_1m``, ``aggregate_1m``) and its ``samples`` is the views' ``samples``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from vpsmon.metrics import Metric, MetricGroup
from vpsmon.rollup_levels import RollupLevel

ROLLUP_SCHEMA = "vpsmon_rollups"
RAW_TABLE = "performance_metrics"
LATEST_TABLE = "vps_latest"
CATALOG = f"{ROLLUP_SCHEMA}.rollup_relations"
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
_LEVEL_NAME = re.compile(r"^[a-z0-9]+$")
_BASE_STEM = "data"


class RollupSchemaError(ValueError):
    """A registry entry the generator cannot render (a programmer's mistake in registry.py)."""


@dataclass(frozen=True)
class RollupSchema:
    """The levels and metric groups the rollups cover after one migration."""

    levels: tuple[RollupLevel, ...]
    groups: tuple[MetricGroup, ...]

    def __post_init__(self) -> None:
        names = [metric.name for group in self.groups for metric in group.metrics]
        if len(set(names)) != len(names):
            raise RollupSchemaError("a metric is in two groups")
        group_names = [group.name for group in self.groups]
        if len(set(group_names)) != len(group_names):
            raise RollupSchemaError("two groups share a name")
        for name in [*names, *group_names]:
            if not _IDENTIFIER.match(name) or name == _BASE_STEM:
                raise RollupSchemaError(f"{name!r} cannot be an SQL name here")
        for level in self.levels:
            if not _LEVEL_NAME.match(level.name):
                raise RollupSchemaError(f"level name {level.name!r} cannot end an SQL name")
        views = {level.view for level in self.levels}
        if not self.levels or self.levels[0].source != RAW_TABLE:
            raise RollupSchemaError(f"the finest level must aggregate {RAW_TABLE}")
        for index, level in enumerate(self.levels[1:], start=1):
            if level.source not in views or level.source == level.view:
                raise RollupSchemaError(f"level {level.name} must aggregate a finer level's view")
            if level.width % self.source_level(level).width:
                raise RollupSchemaError(f"level {level.name} is not a multiple of its source")
            if self.levels[index - 1].width >= level.width:
                raise RollupSchemaError("levels must be listed finest first")

    @property
    def base(self) -> MetricGroup:
        return self.groups[0]

    def source_level(self, level: RollupLevel) -> RollupLevel:
        return next(other for other in self.levels if other.view == level.source)


@dataclass(frozen=True)
class GeneratedMigration:
    """One migration file pair the generator owns: ``NNNN_name.<backend>.sql``."""

    version: int
    name: str
    schema: RollupSchema

    def filename(self, backend: str) -> str:
        return f"{self.version:04d}_{self.name}.{backend}.sql"


def relation(group: MetricGroup, level: RollupLevel, base: MetricGroup) -> str:
    """The group's rollup at ``level``: a table, or a continuous aggregate on TimescaleDB."""
    stem = _BASE_STEM if group == base else group.name
    return f"{ROLLUP_SCHEMA}.{stem}_{level.name}"


def aggregate_function(group: MetricGroup, level: RollupLevel, base: MetricGroup) -> str:
    """Plain PostgreSQL: the SQL function computing the group's buckets of ``level``."""
    infix = "" if group == base else f"{group.name}_"
    return f"{ROLLUP_SCHEMA}.aggregate_{infix}{level.name}"


def samples_column(group: MetricGroup, base: MetricGroup) -> str:
    """The view column counting the group's samples per bucket."""
    return "samples" if group == base else f"{group.name}_samples"


def sum_type(metric: Metric) -> str:
    """Sums of integers are numeric so that they never overflow."""
    return "numeric" if metric.sql_type == "bigint" else metric.sql_type


def view_columns(group: MetricGroup, base: MetricGroup) -> list[tuple[str, str]]:
    """The group's columns in a user-facing view, with their types, in order."""
    columns = [] if group == base else [(samples_column(group, base), "bigint")]
    for metric in group.metrics:
        columns += [
            (f"{metric.name}_avg", "double precision"),
            (f"{metric.name}_min", metric.sql_type),
            (f"{metric.name}_max", metric.sql_type),
            (f"{metric.name}_sum", sum_type(metric)),
        ]
    return columns


def interval_literal(width: timedelta) -> str:
    """``1 minute``, ``5 minutes``, ``1 hour``: how the migrations spell widths."""
    seconds = int(width.total_seconds())
    if seconds <= 0 or width != timedelta(seconds=seconds):
        raise RollupSchemaError(f"a bucket width must be whole seconds, not {width}")
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    raise AssertionError("unreachable: every width is whole seconds")


def carried_by(group: MetricGroup, alias: str, base: MetricGroup) -> list[str]:
    """Conditions selecting the raw rows that carry ``group`` (every row carries the base)."""
    if group == base:
        return []
    return [f"{alias}.{metric.name} IS NOT NULL" for metric in group.metrics]


@dataclass(frozen=True)
class GroupArm:
    """One group's rows inside a merged view: where they come from and their columns.

    ``columns`` are (name in the view, name in ``source``, type), after bucket
    and vps_id; ``source`` is a FROM item (a relation, or a subquery with alias).
    """

    columns: tuple[tuple[str, str, str], ...]
    source: str


def merged_select(arms: Sequence[GroupArm], indent: str = "") -> str:
    """One row per (bucket, vps_id) from every group's arm.

    A UNION ALL with GROUP BY rather than a join, so that filters on vps_id and
    bucket reach every arm. Each column comes from one arm and is a typed NULL
    in the others, so max() just picks it.
    """
    everything = [column for arm in arms for column in arm.columns]
    parts = []
    for arm in arms:
        own = {name: stored for name, stored, _ in arm.columns}
        values = [_arm_value(own.get(name), name, kind) for name, _, kind in everything]
        parts.append(
            "    SELECT bucket, vps_id,\n"
            + ",\n".join(f"        {value}" for value in values)
            + f"\n    FROM {arm.source}"
        )
    picked = ",\n".join(f"    max({name}) AS {name}" for name, _, _ in everything)
    text = (
        f"SELECT\n    bucket,\n    vps_id,\n{picked}\nFROM (\n"
        + "\n    UNION ALL\n".join(parts)
        + "\n) AS metric_groups\nGROUP BY bucket, vps_id"
    )
    return "\n".join(indent + line for line in text.split("\n"))


def _arm_value(stored: str | None, name: str, kind: str) -> str:
    if stored is None:
        return f"NULL::{kind} AS {name}"
    return name if stored == name else f"{stored} AS {name}"

"""The plain-PostgreSQL rollup SQL: per group and level a table and an
aggregate function, and per level the user-facing view and the refresh
functions that projections/postgres_rollups.py calls.

A view shows each group's materialized buckets below the level's watermark
and computes the newer ones from the level below (the equivalent of
TimescaleDB's real-time aggregation). Each level's aggregates read the view
of the level below, whose columns every role that reads the views may read.
"""

from __future__ import annotations

from projections.rollup_sql.plan import RenderPlan
from projections.rollup_sql.schema import (
    RAW_TABLE,
    ROLLUP_SCHEMA,
    GroupArm,
    aggregate_function,
    carried_by,
    interval_literal,
    merged_select,
    relation,
    samples_column,
    sum_type,
)
from vpsmon.constants import INGEST_ROLE, QUERY_ROLE, READER_ROLE
from vpsmon.metrics import MetricGroup
from vpsmon.rollup_levels import BUCKET_ORIGIN_SQL, RollupLevel

# The refresh (as the ingest role) aggregates each level from the view below.
_VIEW_READERS = f"{READER_ROLE}, {QUERY_ROLE}, {INGEST_ROLE}"
# The maintenance runner refreshes as the command side's role.
_REFRESHER = INGEST_ROLE


def render_postgres(plan: RenderPlan) -> str:
    parts = [plan.catalog_table()] if plan.first else []
    parts += plan.raw_columns()
    for level in plan.schema.levels:
        parts.append(f"-- {level.name} level " + "-" * 60)
        parts += [_table(plan, group, level) for group in plan.new_groups]
        parts += [_aggregate(plan, group, level) for group in plan.schema.groups]
        parts.append(_view(plan, level))
        parts += _refresh_functions(plan, level)
    parts.append(plan.catalog_rows())
    return "\n\n".join(parts) + "\n"


def _stored(group: MetricGroup, base: MetricGroup) -> tuple[tuple[str, str, str], ...]:
    """A group table's columns after bucket and vps_id: (name in the view, in the table, type)."""
    columns = [(samples_column(group, base), "samples", "bigint")]
    for m in group.metrics:
        for kind, sql_type in (("sum", sum_type(m)), ("min", m.sql_type), ("max", m.sql_type)):
            columns.append((f"{m.name}_{kind}", f"{m.name}_{kind}", sql_type))
    return tuple(columns)


def _table(plan: RenderPlan, group: MetricGroup, level: RollupLevel) -> str:
    name = relation(group, level, plan.schema.base)
    columns = [
        f"    {stored} {kind} NOT NULL" for _, stored, kind in _stored(group, plan.schema.base)[1:]
    ]
    return (
        f"CREATE TABLE {name} (\n"
        "    bucket  timestamptz NOT NULL,\n"
        "    vps_id  integer NOT NULL REFERENCES vps (id) ON DELETE CASCADE,\n"
        "    samples bigint NOT NULL,\n" + ",\n".join(columns) + ",\n"
        "    PRIMARY KEY (vps_id, bucket)\n"
        ");\n"
        f"CREATE INDEX {name.split('.')[1]}_bucket_idx ON {name} (bucket);\n"
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {name} TO {_REFRESHER};"
    )


def _aggregate(plan: RenderPlan, group: MetricGroup, level: RollupLevel) -> str:
    base = plan.schema.base
    width = interval_literal(level.width)
    if level.source == RAW_TABLE:
        what = "raw rows"
        head = f"date_bin('{width}', p.time, {BUCKET_ORIGIN_SQL}), p.vps_id, count(*),"
        values = [
            f"sum(p.{m.name}){'::numeric' if m.sql_type == 'bigint' else ''},"
            f" min(p.{m.name}), max(p.{m.name})"
            for m in group.metrics
        ]
        conditions = ["p.time >= lowest AND p.time < highest", *carried_by(group, "p", base)]
        source = f"{RAW_TABLE} p"
    else:
        below = plan.schema.source_level(level).name
        what = f"the {below} view (materialized buckets plus its own tail)"
        samples = samples_column(group, base)
        head = (
            f"date_bin('{width}', s.bucket, {BUCKET_ORIGIN_SQL}), s.vps_id,\n"
            f"        sum(s.{samples})::bigint,"
        )
        values = [
            f"sum(s.{m.name}_sum), min(s.{m.name}_min), max(s.{m.name}_max)" for m in group.metrics
        ]
        conditions = ["s.bucket >= lowest AND s.bucket < highest"]
        if group != base:
            conditions.append(f"s.{samples} IS NOT NULL")
        source = f"{level.source} s"
    label = "" if group == base else f" of the {group.name} metrics"
    return (
        f"-- The {level.name} buckets{label} in [lowest, highest) computed from {what}.\n"
        "-- A plain SQL function so that the planner inlines it and pushes vps_id and\n"
        "-- time filters down.\n"
        f"CREATE OR REPLACE FUNCTION {aggregate_function(group, level, base)}"
        "(lowest timestamptz, highest timestamptz)\n"
        f"RETURNS SETOF {relation(group, level, base)}\n"
        "LANGUAGE sql STABLE AS $$\n"
        f"    SELECT {head}\n        " + ",\n        ".join(values) + "\n"
        f"    FROM {source}\n"
        "    WHERE " + "\n      AND ".join(conditions) + "\n"
        "    GROUP BY 1, 2\n"
        "$$;"
    )


def _buckets(plan: RenderPlan, group: MetricGroup, level: RollupLevel, indent: str) -> str:
    """The group's buckets: materialized below the watermark, computed above it."""
    base = plan.schema.base
    watermark = (
        f"(SELECT materialized_until FROM {ROLLUP_SCHEMA}.watermarks WHERE rollup = '{level.name}')"
    )
    lines = [
        "SELECT d.*",
        f"FROM {relation(group, level, base)} d",
        f"WHERE d.bucket < {watermark}",
        "UNION ALL",
        "SELECT t.*",
        f"FROM {aggregate_function(group, level, base)}(",
        f"    {watermark},",
        "    'infinity'",
        ") t",
    ]
    return "\n".join(indent + line for line in lines)


def _averaged(group: MetricGroup, base: MetricGroup) -> list[str]:
    """The group's view columns; averages are recomputed from sums and counts."""
    samples = samples_column(group, base)
    columns = [] if group == base else [samples]
    for m in group.metrics:
        columns += [
            f"({m.name}_sum / {samples})::double precision AS {m.name}_avg",
            f"{m.name}_min",
            f"{m.name}_max",
            f"{m.name}_sum",
        ]
    return columns


def _view(plan: RenderPlan, level: RollupLevel) -> str:
    base = plan.schema.base
    groups = plan.schema.groups
    columns = ["bucket", "vps_id", "samples"]
    for group in groups:
        columns += _averaged(group, base)
    if len(groups) == 1:
        buckets = _buckets(plan, base, level, "    ")
    else:
        arms = [
            GroupArm(
                _stored(group, base),
                f"(\n{_buckets(plan, group, level, '        ')}\n    ) AS {group.name}",
            )
            for group in groups
        ]
        buckets = merged_select(arms, "    ")
    return (
        f"CREATE OR REPLACE VIEW {level.view} AS\nSELECT\n"
        + ",\n".join(f"    {column}" for column in columns)
        + f"\nFROM (\n{buckets}\n) AS buckets;\n"
        f"GRANT SELECT ON {level.view} TO {_VIEW_READERS};"
    )


def _refresh_functions(plan: RenderPlan, level: RollupLevel) -> list[str]:
    base = plan.schema.base
    targets = [
        (relation(group, level, base), aggregate_function(group, level, base))
        for group in plan.schema.groups
    ]
    materialize, rematerialize, expire = [], [], []
    for table, function in targets:
        materialize.append(f"    INSERT INTO {table} SELECT * FROM {function}(lowest, highest);")
        rematerialize.append(
            f"    DELETE FROM {table}\n"
            "    WHERE vps_id = target_vps AND bucket >= lowest AND bucket < highest;\n"
            f"    INSERT INTO {table}\n"
            f"    SELECT * FROM {function}(lowest, highest) WHERE vps_id = target_vps;"
        )
        expire.append(f"    DELETE FROM {table} WHERE bucket < cutoff;")
    name = f"{ROLLUP_SCHEMA}.%s_{level.name}"
    return [
        f"-- Materializes every group's {level.name} buckets in [lowest, highest), above"
        " the\n-- watermark; returns how many buckets (of the first group).\n"
        + _plpgsql(name % "materialize", "lowest timestamptz, highest timestamptz", materialize),
        f"-- Recomputes one VPS's {level.name} buckets in [lowest, highest) of every group"
        "\n-- (late rows); returns how many buckets (of the first group).\n"
        + _plpgsql(
            name % "rematerialize",
            "target_vps integer, lowest timestamptz, highest timestamptz",
            rematerialize,
        ),
        f"-- Deletes every group's {level.name} buckets before cutoff (retention); returns"
        "\n-- how many buckets (of the first group).\n"
        + _plpgsql(name % "expire", "cutoff timestamptz", expire),
    ]


def _plpgsql(name: str, arguments: str, statements: list[str]) -> str:
    """A function running ``statements``, returning the row count of the first one's last."""
    counted = [statements[0] + "\n    GET DIAGNOSTICS buckets = ROW_COUNT;", *statements[1:]]
    return (
        f"CREATE OR REPLACE FUNCTION {name}({arguments})\n"
        "RETURNS bigint\n"
        "LANGUAGE plpgsql AS $$\n"
        "DECLARE\n"
        "    buckets bigint;\n"
        "BEGIN\n" + "\n".join(counted) + "\n"
        "    RETURN buckets;\n"
        "END;\n"
        "$$;"
    )

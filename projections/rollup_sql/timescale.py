"""The TimescaleDB rollup SQL: per group and level a continuous aggregate in
vpsmon_rollups (hierarchical: each level aggregates the group's finer one,
with real-time aggregation), and per level the user-facing view over them.

0002 made the user-facing names continuous aggregates themselves. A
continuous aggregate cannot gain a column without being rebuilt, and a
rebuild loses every bucket older than raw retention, so the first generated
migration moves them, unchanged, into vpsmon_rollups (a rename keeps their
data, policies and jobs) and puts plain views in their place. Later groups
get aggregates of their own, which the views merge with UNION ALL and GROUP
BY (filters on vps_id and bucket reach every group's aggregate).
"""

from __future__ import annotations

from projections.rollup_sql.plan import RenderPlan
from projections.rollup_sql.schema import (
    RAW_TABLE,
    ROLLUP_SCHEMA,
    GroupArm,
    carried_by,
    interval_literal,
    merged_select,
    relation,
    samples_column,
    view_columns,
)
from vpsmon.constants import INGEST_ROLE, QUERY_ROLE, READER_ROLE
from vpsmon.metrics import MetricGroup
from vpsmon.rollup_levels import RollupLevel

_VIEW_READERS = f"{READER_ROLE}, {QUERY_ROLE}"


def render_timescale(plan: RenderPlan) -> str:
    parts = [_takeover(plan)] if plan.first else []
    parts += plan.raw_columns()
    for level in plan.schema.levels:
        parts.append(f"-- {level.name} level " + "-" * 60)
        parts += [_aggregate(plan, group, level) for group in plan.new_groups]
        parts.append(_view(plan, level))
    parts.append(plan.catalog_rows())
    return "\n\n".join(parts) + "\n"


def _takeover(plan: RenderPlan) -> str:
    moves = []
    for level in plan.previous.levels:
        for group in plan.previous.groups:
            name = relation(group, level, plan.schema.base).split(".")[1]
            moves += [
                f"ALTER MATERIALIZED VIEW {level.view} SET SCHEMA {ROLLUP_SCHEMA};",
                f"ALTER MATERIALIZED VIEW {ROLLUP_SCHEMA}.{level.view} RENAME TO {name};",
            ]
    return (
        f"CREATE SCHEMA {ROLLUP_SCHEMA};\n"
        f"GRANT USAGE ON SCHEMA {ROLLUP_SCHEMA} TO {INGEST_ROLE}, {QUERY_ROLE};\n\n"
        + plan.catalog_table()
        + "\n\n-- 0002 made the views themselves continuous aggregates, which cannot gain a\n"
        "-- column without a rebuild that loses every bucket older than raw retention.\n"
        "-- They move unchanged (a rename keeps their data, policies and jobs) and become\n"
        "-- the first group's rollups; plain views take their names.\n" + "\n".join(moves)
    )


def _aggregate(plan: RenderPlan, group: MetricGroup, level: RollupLevel) -> str:
    base = plan.schema.base
    width = interval_literal(level.width)
    columns: list[str] = []
    if level.source == RAW_TABLE:
        columns += [f"time_bucket(INTERVAL '{width}', time) AS bucket", "vps_id"]
        columns.append("count(*) AS samples")
        for m in group.metrics:
            total = f"sum({m.name})::numeric" if m.sql_type == "bigint" else f"sum({m.name})"
            columns += [
                f"({total} / count(*))::double precision AS {m.name}_avg",
                f"min({m.name}) AS {m.name}_min",
                f"max({m.name}) AS {m.name}_max",
                f"{total} AS {m.name}_sum",
            ]
        source = RAW_TABLE
        where = carried_by(group, RAW_TABLE, base)
    else:
        columns += [f"time_bucket(INTERVAL '{width}', bucket) AS bucket", "vps_id"]
        columns.append("sum(samples)::bigint AS samples")
        for m in group.metrics:
            columns += [
                f"(sum({m.name}_sum) / sum(samples))::double precision AS {m.name}_avg",
                f"min({m.name}_min) AS {m.name}_min",
                f"max({m.name}_max) AS {m.name}_max",
                f"sum({m.name}_sum) AS {m.name}_sum",
            ]
        source = relation(group, plan.schema.source_level(level), base)
        where = []
    filter_clause = "\nWHERE " + "\n  AND ".join(where) if where else ""
    return (
        f"CREATE MATERIALIZED VIEW {relation(group, level, base)}\n"
        "WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS\n"
        "SELECT\n"
        + ",\n".join(f"    {column}" for column in columns)
        + f"\nFROM {source}{filter_clause}\nGROUP BY 1, 2\nWITH NO DATA;"
    )


def _view(plan: RenderPlan, level: RollupLevel) -> str:
    base = plan.schema.base
    groups = plan.schema.groups
    if len(groups) == 1:
        names = ["samples", *(name for name, _ in view_columns(base, base))]
        body = (
            "SELECT\n    bucket,\n    vps_id,\n"
            + ",\n".join(f"    {name}" for name in names)
            + f"\nFROM {relation(base, level, base)}"
        )
    else:
        arms = [
            GroupArm(
                (
                    (samples_column(group, base), "samples", "bigint"),
                    *((name, name, kind) for name, kind in view_columns(group, group)),
                ),
                relation(group, level, base),
            )
            for group in groups
        ]
        body = merged_select(arms)
    return (
        f"CREATE OR REPLACE VIEW {level.view} AS\n{body};\n"
        f"GRANT SELECT ON {level.view} TO {_VIEW_READERS};"
    )

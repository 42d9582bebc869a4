"""Which relations hold the rollups: the catalog that generated migrations keep.

Each metric group has one relation per rollup view (a table on plain
PostgreSQL, a continuous aggregate on TimescaleDB; see
projections/rollup_sql). Code that sets policies or refreshes on TimescaleDB
reads the catalog instead of assuming that a view is its own aggregate.
"""

from __future__ import annotations

from vpsmon.storage.types import Connection


async def rollup_relations(conn: Connection) -> dict[str, tuple[str, ...]]:
    """Rollup view name → the schema-qualified relations of its metric groups."""
    rows = await conn.fetch(
        "SELECT view, relation FROM vpsmon_rollups.rollup_relations ORDER BY view, relation"
    )
    relations: dict[str, tuple[str, ...]] = {}
    for row in rows:
        relations[row["view"]] = (*relations.get(row["view"], ()), row["relation"])
    return relations

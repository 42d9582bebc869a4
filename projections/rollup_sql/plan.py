"""What one generated migration changes, relative to the state before it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from projections.rollup_sql.schema import (
    CATALOG,
    LATEST_TABLE,
    RAW_TABLE,
    GeneratedMigration,
    RollupSchema,
    RollupSchemaError,
    relation,
)
from vpsmon.constants import INGEST_ROLE, QUERY_ROLE
from vpsmon.metrics import MetricGroup


@dataclass(frozen=True)
class RenderPlan:
    """A migration and the schema it starts from.

    ``first`` marks the migration that takes over what 0002 wrote by hand: it
    creates the catalog and, on TimescaleDB, moves 0002's continuous
    aggregates behind views so that later groups can be joined in.
    """

    migration: GeneratedMigration
    previous: RollupSchema
    first: bool

    @property
    def schema(self) -> RollupSchema:
        return self.migration.schema

    @property
    def new_groups(self) -> tuple[MetricGroup, ...]:
        return self.schema.groups[len(self.previous.groups) :]

    def catalog_table(self) -> str:
        return (
            "-- Which relation holds each group's rollup for each view: read by the code\n"
            "-- that sets policies, refreshes and measures the refresh lag.\n"
            f"CREATE TABLE {CATALOG} (\n"
            "    view         text NOT NULL,\n"
            "    metric_group text NOT NULL,\n"
            "    relation     text NOT NULL UNIQUE,\n"
            "    PRIMARY KEY (view, metric_group)\n"
            ");\n"
            f"GRANT SELECT ON {CATALOG} TO {INGEST_ROLE}, {QUERY_ROLE};"
        )

    def raw_columns(self) -> list[str]:
        """The new groups' measurement columns; NULL in rows that predate them."""
        statements = [
            f"ALTER TABLE {table} ADD COLUMN {metric.name} {metric.sql_type};"
            for group in self.new_groups
            for table in (RAW_TABLE, LATEST_TABLE)
            for metric in group.metrics
        ]
        if not statements:
            return []
        return [
            "-- The new groups' measurements; NULL in rows older than them.\n"
            + "\n".join(statements)
        ]

    def catalog_rows(self) -> str:
        groups = self.schema.groups if self.first else self.new_groups
        rows = [
            f"    ('{level.view}', '{group.name}', '{relation(group, level, self.schema.base)}')"
            for level in self.schema.levels
            for group in groups
        ]
        return (
            f"INSERT INTO {CATALOG} (view, metric_group, relation) VALUES\n"
            + ",\n".join(rows)
            + ";"
        )


def plan_for(
    migration: GeneratedMigration,
    registry: Sequence[GeneratedMigration],
    hand_written: RollupSchema,
) -> RenderPlan:
    """Check that ``migration`` only appends to what came before it, and say what it adds."""
    index = registry.index(migration)
    versions = [entry.version for entry in registry]
    if versions != sorted(set(versions)):
        raise RollupSchemaError("registered migrations must have rising, distinct versions")
    previous = registry[index - 1].schema if index else hand_written
    schema = migration.schema
    if schema.levels != previous.levels:
        raise RollupSchemaError(
            f"{migration.name}: the levels differ from the previous migration's; the generator"
            " adds metric groups only (a new level also needs its own retention settings)"
        )
    if schema.groups[: len(previous.groups)] != previous.groups:
        raise RollupSchemaError(
            f"{migration.name}: groups may only be appended; a migrated group is frozen"
            " (its continuous aggregates cannot gain columns): put new metrics in a new group"
        )
    return RenderPlan(migration, previous, first=index == 0)

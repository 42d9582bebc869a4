"""Every generated rollup migration and the inputs it is rendered from.

Entries are append-only, like the migration files: an entry's inputs never
change once it is released, so the drift test can render each file in
db/migrations again and compare. To roll up new metrics, append a group to
vpsmon.metrics.METRIC_GROUPS, append an entry here whose groups end with it,
and run ``python -m projections.rollup_sql`` to write the new files.
"""

from __future__ import annotations

from projections.rollup_sql.schema import GeneratedMigration, RollupSchema
from vpsmon.metrics import CORE_METRICS
from vpsmon.rollup_levels import LEVELS

# What db/migrations/0002_rollups.*.sql created by hand.
HAND_WRITTEN = RollupSchema(LEVELS, (CORE_METRICS,))

GENERATED_MIGRATIONS = (
    # Takes over 0002: the same views and refresh, now from the generator.
    GeneratedMigration(12, "rollups_generated", RollupSchema(LEVELS, (CORE_METRICS,))),
)

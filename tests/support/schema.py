"""What a database's vpsmon schema looks like, to compare two databases."""

from __future__ import annotations

import asyncpg

SCHEMA_FINGERPRINT = """
SELECT n.nspname, c.relname, c.relkind::text, a.attname,
       format_type(a.atttypid, a.atttypmod) AS type
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname IN ('public', 'vpsmon_rollups')
UNION ALL
SELECT n.nspname, p.proname, 'function', NULL, pg_get_function_arguments(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname IN ('public', 'vpsmon_rollups')
UNION ALL
SELECT 'trigger', t.tgname, t.tgrelid::regclass::text, NULL, NULL
FROM pg_trigger t WHERE NOT t.tgisinternal
ORDER BY 1, 2, 3, 4, 5
"""


async def fingerprint(dsn: str) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [tuple(row) for row in await conn.fetch(SCHEMA_FINGERPRINT)]
    finally:
        await conn.close()


async def applied_versions(dsn: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
    finally:
        await conn.close()

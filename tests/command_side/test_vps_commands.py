"""VPS lifecycle commands through the real CLI and database: events, projections, tokens."""

from __future__ import annotations

import json

import asyncpg
import pytest

from command_side.vps_commands import hash_agent_token, vps_for_token
from tests.support.cli import run_cli


async def test_vps_add_list_rotate_remove(embedded_migrated_database: str) -> None:
    code, out, err = await run_cli(embedded_migrated_database, "vps", "add", "web-1", "--json")
    assert code == 0, err
    added = json.loads(out)
    assert added["name"] == "web-1"
    first_token = added["agent_token"]

    code, out, err = await run_cli(embedded_migrated_database, "vps", "list", "--json")
    assert code == 0, err
    assert [(v["id"], v["name"]) for v in json.loads(out)] == [(added["vps_id"], "web-1")]

    code, out, err = await run_cli(
        embedded_migrated_database, "vps", "rotate-token", str(added["vps_id"])
    )
    assert code == 0, err
    second_token = out.rsplit(" ", 1)[-1].strip()
    assert second_token.startswith("vpsm_")
    assert second_token != first_token

    conn = await asyncpg.connect(embedded_migrated_database)
    try:
        assert await vps_for_token(conn, first_token) is None
        assert await vps_for_token(conn, second_token) == added["vps_id"]
        # Only hashes are stored, and never in `vps`.
        stored = {r["token_sha256"] for r in await conn.fetch("SELECT * FROM agent_tokens")}
        assert stored == {hash_agent_token(first_token), hash_agent_token(second_token)}
        vps_text = str(await conn.fetch("SELECT * FROM vps"))
        events_text = str(await conn.fetch("SELECT * FROM vps_events"))
        assert first_token not in vps_text + events_text
        assert second_token not in vps_text + events_text
        await conn.execute(
            "INSERT INTO performance_metrics VALUES (now(), $1, 1, 1, 2, 3, 4, 5, 6)",
            added["vps_id"],
        )
    finally:
        await conn.close()

    code, out, err = await run_cli(
        embedded_migrated_database, "vps", "remove", str(added["vps_id"])
    )
    assert code == 0, err
    conn = await asyncpg.connect(embedded_migrated_database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM vps") == 0
        assert await conn.fetchval("SELECT count(*) FROM performance_metrics") == 0
        assert await vps_for_token(conn, second_token) is None
        kinds = [r["event_type"] for r in await conn.fetch("SELECT * FROM vps_events")]
        assert kinds == ["registered", "token_rotated", "decommissioned"]
    finally:
        await conn.close()


async def test_unknown_vps_is_a_clear_error(embedded_migrated_database: str) -> None:
    for action in ("rotate-token", "remove"):
        code, _, err = await run_cli(embedded_migrated_database, "vps", action, "999")
        assert code == 1
        assert "no VPS with id 999" in err
        assert "Traceback" not in err


async def test_invalid_name_is_refused(embedded_migrated_database: str) -> None:
    code, _, err = await run_cli(embedded_migrated_database, "vps", "add", "   ")
    assert code == 1
    assert "1 to 200 characters" in err


async def test_events_are_append_only(embedded_migrated_database: str) -> None:
    code, _, err = await run_cli(embedded_migrated_database, "vps", "add", "db-1")
    assert code == 0, err
    conn = await asyncpg.connect(embedded_migrated_database)
    try:
        for statement in ("UPDATE vps_events SET payload = '{}'", "DELETE FROM vps_events"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_vps_config_keeps_what_is_not_given_and_reset_drops_it(
    embedded_migrated_database: str,
) -> None:
    dsn = embedded_migrated_database
    code, out, err = await run_cli(dsn, "vps", "add", "web-1", "--json")
    assert code == 0, err
    vps_id = str(json.loads(out)["vps_id"])

    async def overrides() -> tuple[int | None, int | None, int | None]:
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow(
                "SELECT collect_interval_seconds, upload_interval_seconds, upload_batch_max_size"
                " FROM vps_agent_config WHERE vps_id = $1",
                int(vps_id),
            )
        finally:
            await conn.close()
        assert row is not None
        return row[0], row[1], row[2]

    steps: list[tuple[list[str], tuple[int | None, int | None, int | None]]] = [
        (["--collect-interval", "30"], (30, None, None)),
        (["--upload-interval", "20"], (30, 20, None)),
        (["--batch-max", "500", "--collect-interval", "15"], (15, 20, 500)),
        (["--reset", "--upload-interval", "60"], (None, 60, None)),
        (["--reset"], (None, None, None)),
    ]
    for options, expected in steps:
        code, _, err = await run_cli(dsn, "vps", "config", vps_id, *options)
        assert code == 0, err
        assert await overrides() == expected, options

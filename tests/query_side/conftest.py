"""A fleet (users, VPSes, tokens) behind a real query side, shared by a test module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.databases import create_database, drop_database
from tests.query_side.harness import Fleet, query_side, seed


@pytest.fixture(scope="module")
async def fleet(
    tmp_path_factory: pytest.TempPathFactory, embedded_server_dsn: str
) -> AsyncIterator[Fleet]:
    dsn = await create_database(embedded_server_dsn)
    tokens, vps, agent_tokens, passwords = await seed(dsn)
    log = tmp_path_factory.mktemp("query-side") / "query-side.log"
    async with query_side(dsn, log) as base_url:
        yield Fleet(dsn, base_url, tokens, vps, agent_tokens, passwords)
    await drop_database(embedded_server_dsn, dsn)

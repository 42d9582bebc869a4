"""Fixture wiring for the whole suite: one throwaway embedded PostgreSQL per test
session, the storage backends the contract suites run against, a database per
test (empty, or a copy of a template migrated once per session and server), and
the markers by folder. The helpers themselves live in tests/support/."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

# The helpers' asserts report their values as the tests' own do; this must come
# before the first import of tests.support.
pytest.register_assert_rewrite("tests.support")

from tests.support.databases import (  # noqa: E402
    StorageServer,
    migrated_template,
    throwaway_database,
)
from tests.support.processes import kill_leftovers  # noqa: E402
from tests.support.query_side import Fleet, query_side, seed  # noqa: E402
from tests.support.rollups import Store, migrated_store  # noqa: E402
from vpsmon.settings import Settings  # noqa: E402
from vpsmon.storage.embedded import EmbeddedPostgres  # noqa: E402

TIMESCALE_URL_ENV = "VPSMON_TEST_TIMESCALE_URL"
# Tiers by folder, so a new test file is marked by where it lives.
_FOLDER_MARKS = {"e2e": "e2e", "browser": "browser", "loadtests": "slow"}
# Helpers, not tests: nothing in tests/support/ is collected.
collect_ignore = ["support"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        folder = item.path.relative_to(tests_dir).parts[0]
        if folder in _FOLDER_MARKS:
            item.add_marker(_FOLDER_MARKS[folder])
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "timescaledb" in callspec.params.values():
            item.add_marker("timescale")


@pytest.fixture(scope="session", autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """Whatever the tests started and did not stop (say, after a failure) is killed."""
    yield
    kill_leftovers()


@pytest.fixture(scope="session")
def embedded_server_dsn() -> Iterator[str]:
    data_dir = Path(tempfile.mkdtemp(prefix="vpsmon-test-pg-", dir="/tmp")) / "pg18"
    server = EmbeddedPostgres(data_dir)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session", params=["postgresql", "timescaledb"])
def storage_server(request: pytest.FixtureRequest) -> StorageServer:
    """Every backend the storage contract must hold on; TimescaleDB only when configured."""
    if request.param == "timescaledb":
        url = os.environ.get(TIMESCALE_URL_ENV)
        if not url:
            pytest.skip(f"TimescaleDB contract tests need {TIMESCALE_URL_ENV} (a superuser URL)")
        return StorageServer("timescaledb", url, "timescaledb")
    dsn = request.getfixturevalue("embedded_server_dsn")
    return StorageServer("postgresql", dsn, "postgresql")


@pytest.fixture(scope="session")
async def storage_template(storage_server: StorageServer) -> AsyncIterator[str]:
    """The backend's migrated template on its server, built once per session."""
    async with migrated_template(storage_server) as name:
        yield name


@pytest.fixture(scope="session")
async def embedded_template(embedded_server_dsn: str) -> AsyncIterator[str]:
    """The embedded server's migrated template, built once per session."""
    async with migrated_template(
        StorageServer("postgresql", embedded_server_dsn, "postgresql")
    ) as name:
        yield name


@pytest.fixture
async def fresh_database(storage_server: StorageServer) -> AsyncIterator[str]:
    """An empty database on the backend's server, dropped afterwards."""
    async with throwaway_database(storage_server.dsn) as dsn:
        yield dsn


@pytest.fixture
async def migrated_database(
    storage_server: StorageServer, storage_template: str
) -> AsyncIterator[str]:
    """A migrated database on the backend's server (a copy of the template), dropped
    afterwards."""
    async with throwaway_database(storage_server.dsn, storage_template) as dsn:
        yield dsn


@pytest.fixture
async def embedded_database(embedded_server_dsn: str) -> AsyncIterator[str]:
    """An empty database on the embedded (plain PostgreSQL) server."""
    async with throwaway_database(embedded_server_dsn) as dsn:
        yield dsn


@pytest.fixture
async def embedded_migrated_database(
    embedded_server_dsn: str, embedded_template: str
) -> AsyncIterator[str]:
    """A migrated database on the embedded server (a copy of its template)."""
    async with throwaway_database(embedded_server_dsn, embedded_template) as dsn:
        yield dsn


@pytest.fixture
async def conn(embedded_migrated_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to ``embedded_migrated_database``."""
    connection = await asyncpg.connect(embedded_migrated_database)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def store(storage_server: StorageServer, migrated_database: str) -> AsyncIterator[Store]:
    """``migrated_database`` as a Store (rollup refresh, retention) with the default settings."""
    settings = Settings(backend=storage_server.backend)
    async with migrated_store(migrated_database, storage_server.name, settings) as opened:
        yield opened


@pytest.fixture(scope="module")
async def fleet(
    tmp_path_factory: pytest.TempPathFactory, embedded_server_dsn: str, embedded_template: str
) -> AsyncIterator[Fleet]:
    async with throwaway_database(embedded_server_dsn, embedded_template) as dsn:
        tokens, vps, agent_tokens, passwords = await seed(dsn)
        log = tmp_path_factory.mktemp("query-side") / "query-side.log"
        async with query_side(dsn, log) as base_url:
            yield Fleet(dsn, base_url, tokens, vps, agent_tokens, passwords)

"""`vpsmon command-side`: the gRPC server process and its graceful shutdown.

It also runs the maintenance runner (command_side/maintenance.py): the
command side elected by the advisory lock runs the cluster's background jobs.

On SIGTERM it stops taking new batches, commits and acks everything it has
read, ends the streams with UNAVAILABLE (agents reconnect, possibly to
another instance) and exits.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

import asyncpg
import grpc

from command_side.events import follow_vps_events
from command_side.ingest import IngestWriter
from command_side.maintenance import MaintenanceRunner
from command_side.maintenance_jobs import maintenance_jobs
from command_side.service import AgentCommunicationService
from command_side.signals import run_until_signalled
from proto.options import SERVER_OPTIONS
from proto.vpsmon.v1 import agent_pb2_grpc
from vpsmon.constants import COMMAND_SIDE_DRAIN_S, DATABASE_CONNECT_TIMEOUT_S
from vpsmon.errors import ConfigError
from vpsmon.settings import Settings
from vpsmon.storage.database import open_database
from vpsmon.storage.schema import upgrade_schema

logger = logging.getLogger(__name__)


def _bind(server: grpc.aio.Server, settings: Settings) -> int:
    if settings.grpc_tls_cert and settings.grpc_tls_key:
        credentials = grpc.ssl_server_credentials(
            [(Path(settings.grpc_tls_key).read_bytes(), Path(settings.grpc_tls_cert).read_bytes())]
        )
        return server.add_secure_port(settings.grpc_listen, credentials)
    return server.add_insecure_port(settings.grpc_listen)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    async with open_database(settings) as dsn:
        # A short connect timeout: a database that restarts must not stall ingest.
        pool = await asyncpg.create_pool(
            dsn, min_size=2, max_size=8, timeout=DATABASE_CONNECT_TIMEOUT_S
        )
        try:
            await _serve(dsn, pool, settings, stop)
        finally:
            await pool.close()


async def _serve(dsn: str, pool: asyncpg.Pool, settings: Settings, stop: asyncio.Event) -> None:
    async with pool.acquire() as conn:
        report = await upgrade_schema(conn, settings)
        raw_retention: timedelta = await conn.fetchval(
            "SELECT keep FROM retention_policy WHERE relation = 'performance_metrics'"
        )
    writer = IngestWriter(
        pool,
        max_group_rows=settings.ingest_group_max_rows,
        linger_seconds=settings.ingest_group_linger_ms / 1000,
    )
    writer.start()
    service = AgentCommunicationService(pool, writer, settings, raw_retention)
    server = grpc.aio.server(
        options=SERVER_OPTIONS, maximum_concurrent_rpcs=settings.grpc_max_streams
    )
    agent_pb2_grpc.add_AgentCommunicationServiceServicer_to_server(service, server)
    port = _bind(server, settings)
    if port == 0:
        raise ConfigError(f"VPSMON_GRPC_LISTEN: cannot listen on {settings.grpc_listen}")
    await server.start()
    background = [
        asyncio.create_task(follow_vps_events(dsn, pool, service, settings, stop)),
        asyncio.create_task(
            MaintenanceRunner(dsn, maintenance_jobs(report.backend, settings)).run(stop)
        ),
    ]
    logger.info(
        "command side listening on %s (backend %s)", settings.grpc_listen, report.backend.value
    )
    print(f"command side listening on {settings.grpc_listen}", flush=True)
    await stop.wait()

    logger.info("shutting down: finishing %d streams", len(service.streams))
    service.shutting_down.set()
    await server.stop(grace=COMMAND_SIDE_DRAIN_S)
    await writer.close()
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    logger.info("command side stopped; %d rows committed", writer.committed_rows)


def run(settings: Settings) -> int:
    return run_until_signalled(serve, settings)

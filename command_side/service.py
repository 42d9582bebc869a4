"""The AgentCommunicationService: handshake, per-batch validation, acks after commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta

import asyncpg
import grpc

from command_side.agent_config import agent_config_for
from command_side.budget import IngestBudget
from command_side.grpc_status import grpc_status
from command_side.ingest import IngestWriter, PendingBatch
from command_side.stream_claims import claim_stream, live_streams, release_stream
from command_side.streams import ConnectedAgent, StreamRegistry
from command_side.validation import validate_batch
from command_side.vps_commands import vps_for_token
from proto.vpsmon.v1 import agent_pb2, agent_pb2_grpc
from vpsmon.constants import BATCHES_IN_FLIGHT_PER_STREAM
from vpsmon.errors import (
    AgentTokenRejectedError,
    HandshakeTimeoutError,
    InvalidBatchError,
    OverloadedError,
    ProtocolError,
    ServiceStoppingError,
    StorageError,
    StorageUnavailableError,
    StreamError,
    StreamReplacedError,
    UnknownVpsError,
    VpsmonError,
)
from vpsmon.self_metrics import REFUSED_HANDSHAKE_BACKLOG, REFUSED_OVER_BUDGET, SELF_METRICS
from vpsmon.settings import Settings
from vpsmon.storage.errors import translated_errors
from vpsmon.storage.types import Queryable

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[agent_pb2.MessageToServer, agent_pb2.MessageToAgent]

# Why an older stream of a VPS ends when a newer handshake claims it.
REPLACED = (
    "a newer stream of this VPS took over (the agent reconnected, or another agent "
    "uses the same token)"
)


class AgentCommunicationService(agent_pb2_grpc.AgentCommunicationServiceServicer):
    def __init__(
        self,
        pool: asyncpg.Pool,
        writer: IngestWriter,
        settings: Settings,
        raw_retention: timedelta,
    ) -> None:
        self._pool = pool
        self._writer = writer
        self._settings = settings
        self._raw_retention_ms = int(raw_retention.total_seconds() * 1000)
        self.streams = StreamRegistry()
        self.shutting_down = asyncio.Event()
        self.budgets: dict[int, IngestBudget] = {}
        self._unauthenticated = 0

    def apply_config(self, vps_id: int, config: agent_pb2.AgentConfig) -> None:
        """Size the VPS's ingest budget from the AgentConfig it was sent."""
        budget = IngestBudget.for_config(
            config.metrics_collect_interval_seconds,
            self._settings.ingest_budget_headroom,
            self._settings.max_batch_snapshots,
        )
        current = self.budgets.get(vps_id)
        if current is None:
            self.budgets[vps_id] = budget
        else:
            current.resize(budget)

    # The read/write API (context.read/write) lets the server push messages
    # (config, acks) independently of what it reads, so this is no generator.
    async def EstablishCommunicationStream(  # type: ignore[override]
        self, request_iterator: object, context: Context
    ) -> None:
        """Handshake, then serve the stream; whatever ends it, ends it with the status
        command_side/grpc_status.py gives that error."""
        try:
            stream = await self._authenticate(context)
            if stream is not None:
                await self._serve(stream, context)
        except VpsmonError as error:
            await context.abort(*grpc_status(error))

    async def _authenticate(self, context: Context) -> ConnectedAgent | None:
        """The handshake, with a bound on the streams that wait for one."""
        if self._unauthenticated >= self._settings.grpc_max_unauthenticated_streams:
            SELF_METRICS.resource_exhausted.labels(REFUSED_HANDSHAKE_BACKLOG).inc()
            raise OverloadedError("too many streams waiting for a handshake")
        self._unauthenticated += 1
        try:
            return await self._handshake(context)
        finally:
            self._unauthenticated -= 1

    async def _serve(self, stream: ConnectedAgent, context: Context) -> None:
        """Read and write until the stream ends; raises the reason it ended with."""
        for older in self.streams.for_vps(stream.vps_id):
            older.end(StreamReplacedError(REPLACED))
        self.streams.add(stream)
        SELF_METRICS.agent_streams.inc()
        writer = asyncio.create_task(self._write_loop(stream, context))
        try:
            # A claim by another command side may have been announced before we added it.
            with contextlib.suppress(StorageUnavailableError), translated_errors():
                await end_replaced_streams(self, self._pool, [stream.vps_id])
            await self._read_loop(stream, context)
        finally:
            self.streams.remove(stream)
            SELF_METRICS.agent_streams.dec()
            stream.outbox.put_nowait(None)
            await writer
            with contextlib.suppress(StorageUnavailableError), translated_errors():
                await release_stream(self._pool, stream.vps_id, stream.stream_id)
        if stream.failure is not None:
            raise stream.failure

    async def _handshake(self, context: Context) -> ConnectedAgent | None:
        deadline = self._settings.grpc_handshake_timeout.total_seconds()
        try:
            async with asyncio.timeout(deadline):
                first = await context.read()
        except TimeoutError:
            raise HandshakeTimeoutError(f"no AgentHandshake within {deadline:g} s") from None
        if not isinstance(first, agent_pb2.MessageToServer):  # EOF
            return None
        if first.WhichOneof("payload") != "agent_handshake":
            raise ProtocolError("the first message on a stream must be an AgentHandshake")
        handshake = first.agent_handshake
        try:
            with translated_errors():  # the timeout too: the database does not answer
                async with asyncio.timeout(deadline):
                    vps_id = await vps_for_token(self._pool, handshake.agent_token)
                    if vps_id is None:
                        raise AgentTokenRejectedError("unknown or revoked agent token")
                    config = await agent_config_for(self._pool, vps_id, self._settings)
                    stream = ConnectedAgent(vps_id, handshake.agent_token)
                    async with self._pool.acquire() as conn:
                        await claim_stream(
                            conn,
                            vps_id,
                            stream.stream_id,
                            handshake.hostname,
                            handshake.agent_version,
                        )
        except StorageUnavailableError:
            raise StorageUnavailableError("database unavailable; retry later") from None
        if self.shutting_down.is_set():
            raise ServiceStoppingError("the server is shutting down")
        logger.info(
            "agent for VPS %d connected: %s %s (agent %s) from %s",
            vps_id,
            handshake.hostname,
            handshake.os,
            handshake.agent_version,
            context.peer(),
        )
        self.apply_config(vps_id, config)
        stream.push(
            agent_pb2.MessageToAgent(
                handshake_ack=agent_pb2.ServerHandshakeAck(vps_id=vps_id, config=config)
            )
        )
        return stream

    async def _read_loop(self, stream: ConnectedAgent, context: Context) -> None:
        in_flight: dict[asyncio.Task[None], int] = {}  # each batch's size in bytes
        # Beyond this the handler stops reading; gRPC flow control holds the agent back.
        slots = asyncio.Semaphore(BATCHES_IN_FLIGHT_PER_STREAM)
        stop_waiters = [
            asyncio.create_task(self.shutting_down.wait()),
            asyncio.create_task(stream.ended.wait()),
        ]
        try:
            while True:
                await slots.acquire()
                read = asyncio.create_task(context.read())
                done, _ = await asyncio.wait(
                    [read, *stop_waiters], return_when=asyncio.FIRST_COMPLETED
                )
                if read not in done:
                    read.cancel()
                    break
                message = read.result()
                if not isinstance(message, agent_pb2.MessageToServer):  # EOF
                    break
                kind = message.WhichOneof("payload")
                if kind == "performance_batch":
                    batch = message.performance_batch
                    size = batch.ByteSize()  # computed, not cached: once per batch
                    if not await self._admit(stream, batch, size, in_flight):
                        slots.release()
                        break
                    task = asyncio.create_task(self._ingest(stream, batch))
                    in_flight[task] = size
                    task.add_done_callback(lambda t: in_flight.pop(t, None))
                    task.add_done_callback(lambda _: slots.release())
                    continue
                slots.release()
                if kind == "heartbeat":
                    now = agent_pb2.Heartbeat(timestamp_unix_ms=time.time_ns() // 1_000_000)
                    stream.push(agent_pb2.MessageToAgent(heartbeat=now))
                elif kind == "agent_handshake":
                    stream.end(ProtocolError("handshake already done"))
                else:
                    logger.debug(
                        "ignoring a message without a known payload from VPS %d", stream.vps_id
                    )
        finally:
            for waiter in stop_waiters:
                waiter.cancel()
            # Whatever was read is committed and acked before the stream ends.
            await asyncio.gather(*in_flight, return_exceptions=True)
        if self.shutting_down.is_set() and stream.failure is None:
            stream.end(ServiceStoppingError("the server is shutting down"))

    async def _admit(
        self,
        stream: ConnectedAgent,
        batch: agent_pb2.PerformanceSnapshotBatch,
        size: int,
        in_flight: dict[asyncio.Task[None], int],
    ) -> bool:
        """Hold the stream within its VPS's budget; False: it must end and back off."""
        limit = self._settings.ingest_max_in_flight_bytes
        while in_flight and sum(in_flight.values()) + size > limit:
            await asyncio.wait(list(in_flight), return_when=asyncio.FIRST_COMPLETED)
        admission = self.budgets[stream.vps_id].admit(len(batch.snapshots))
        if admission.refused:
            SELF_METRICS.resource_exhausted.labels(REFUSED_OVER_BUDGET).inc()
            rate = self.budgets[stream.vps_id].rate_per_s
            stream.end(
                OverloadedError(
                    f"VPS {stream.vps_id} is over its ingest budget of {rate:g} snapshots/s",
                    admission.retry_after_s,
                )
            )
            return False
        if admission.pace_s > 0:
            await asyncio.sleep(admission.pace_s)
        return True

    async def _ingest(
        self, stream: ConnectedAgent, batch: agent_pb2.PerformanceSnapshotBatch
    ) -> None:
        now_ms = time.time_ns() // 1_000_000
        ack = agent_pb2.BatchAck(batch_id=batch.batch_id)
        try:
            validated = validate_batch(
                batch,
                stream.vps_id,
                now_ms=now_ms,
                oldest_ms=now_ms - self._raw_retention_ms,
                max_snapshots=self._settings.max_batch_snapshots,
            )
        except InvalidBatchError as error:
            SELF_METRICS.invalid_snapshots.inc(len(batch.snapshots))
            ack.rejected = len(batch.snapshots)
            ack.error = str(error)
            stream.push(agent_pb2.MessageToAgent(batch_ack=ack))
            return
        SELF_METRICS.invalid_snapshots.inc(validated.invalid)
        pending = PendingBatch(stream.vps_id, validated.batch_id, validated.rows, validated.invalid)
        try:
            result = await self._writer.append(pending)
        except StorageUnavailableError:
            stream.end(StorageUnavailableError("database unavailable; re-send unacked batches"))
            return
        except UnknownVpsError as error:  # removed while it was streaming
            stream.end(error)
            return
        except Exception:
            logger.exception("batch %s of VPS %d failed", batch.batch_id, stream.vps_id)
            stream.end(StorageError("the batch could not be stored; re-send it"))
            return
        if result.duplicate:
            ack.duplicate = True
        else:
            ack.accepted = result.accepted
            ack.rejected, ack.error = validated.ack_fields(refused=result.refused)
        stream.push(agent_pb2.MessageToAgent(batch_ack=ack))

    async def _write_loop(self, stream: ConnectedAgent, context: Context) -> None:
        while (message := await stream.outbox.get()) is not None:
            try:
                await context.write(message)
                SELF_METRICS.agent_messages_sent.labels(message.WhichOneof("payload")).inc()
            except Exception as error:  # the peer went away; the read loop notices too
                logger.debug("write to VPS %d failed: %r", stream.vps_id, error)
                stream.end(StreamError("stream write failed"))
                return


async def end_replaced_streams(
    service: AgentCommunicationService, conn: Queryable, vps_ids: list[int]
) -> None:
    """End this command side's streams of ``vps_ids`` whose claim a newer one took."""
    claims = await live_streams(conn, vps_ids)
    for vps_id in vps_ids:
        for stream in service.streams.for_vps(vps_id):
            claimed = claims.get(vps_id)
            if claimed is not None and claimed != stream.stream_id:
                stream.end(StreamReplacedError(REPLACED))

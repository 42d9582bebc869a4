"""The AgentCommunicationService: handshake, per-batch validation, acks after commit."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import asyncpg
import grpc

from command_side.agent_config import agent_config_for
from command_side.ingest import (
    CONNECTION_ERRORS,
    IngestWriter,
    PendingBatch,
    StorageUnavailableError,
)
from command_side.streams import AgentStream, StreamRegistry
from command_side.validation import InvalidBatchError, validate_batch
from command_side.vps_commands import vps_for_token
from proto.vpsmon.v1 import agent_pb2, agent_pb2_grpc
from vpsmon.settings import Settings

logger = logging.getLogger(__name__)

# Batches of one stream being validated and committed at once; beyond this
# the handler stops reading, and gRPC flow control holds the agent back.
MAX_IN_FLIGHT_PER_STREAM = 16


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

    # The read/write API (context.read/write) lets the server push messages
    # (config, acks) independently of what it reads, so this is no generator.
    async def EstablishCommunicationStream(  # type: ignore[override]
        self,
        request_iterator: object,
        context: grpc.aio.ServicerContext[agent_pb2.MessageToServer, agent_pb2.MessageToAgent],
    ) -> None:
        stream = await self._handshake(context)
        if stream is None:
            return
        self.streams.add(stream)
        writer = asyncio.create_task(self._write_loop(stream, context))
        try:
            await self._read_loop(stream, context)
        finally:
            self.streams.remove(stream)
            stream.outbox.put_nowait(None)
            await writer
        if stream.failure is not None:
            await context.abort(*stream.failure)

    async def _handshake(
        self,
        context: grpc.aio.ServicerContext[agent_pb2.MessageToServer, agent_pb2.MessageToAgent],
    ) -> AgentStream | None:
        first = await context.read()
        if not isinstance(first, agent_pb2.MessageToServer):  # EOF
            return None
        if first.WhichOneof("payload") != "agent_handshake":
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "the first message on a stream must be an AgentHandshake",
            )
        handshake = first.agent_handshake
        try:
            vps_id = await vps_for_token(self._pool, handshake.agent_token)
            if vps_id is not None:
                config = await agent_config_for(self._pool, vps_id, self._settings)
        except CONNECTION_ERRORS:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable; retry later")
        if vps_id is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown or revoked agent token")
        assert vps_id is not None
        if self.shutting_down.is_set():
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
        logger.info(
            "agent for VPS %d connected: %s %s (agent %s) from %s",
            vps_id,
            handshake.hostname,
            handshake.os,
            handshake.agent_version,
            context.peer(),
        )
        stream = AgentStream(vps_id, handshake.agent_token)
        stream.push(
            agent_pb2.MessageToAgent(
                handshake_ack=agent_pb2.ServerHandshakeAck(vps_id=vps_id, config=config)
            )
        )
        return stream

    async def _read_loop(
        self,
        stream: AgentStream,
        context: grpc.aio.ServicerContext[agent_pb2.MessageToServer, agent_pb2.MessageToAgent],
    ) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        slots = asyncio.Semaphore(MAX_IN_FLIGHT_PER_STREAM)
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
                    task = asyncio.create_task(self._ingest(stream, message.performance_batch))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    task.add_done_callback(lambda _: slots.release())
                    continue
                slots.release()
                if kind == "heartbeat":
                    now = agent_pb2.Heartbeat(timestamp_unix_ms=time.time_ns() // 1_000_000)
                    stream.push(agent_pb2.MessageToAgent(heartbeat=now))
                elif kind == "agent_handshake":
                    stream.fail(grpc.StatusCode.FAILED_PRECONDITION, "handshake already done")
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
            stream.fail(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")

    async def _ingest(self, stream: AgentStream, batch: agent_pb2.PerformanceSnapshotBatch) -> None:
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
            ack.rejected = len(batch.snapshots)
            ack.error = str(error)
            stream.push(agent_pb2.MessageToAgent(batch_ack=ack))
            return
        pending = PendingBatch(
            stream.vps_id, validated.batch_id, validated.rows, validated.rejected
        )
        try:
            result = await self._writer.append(pending)
        except StorageUnavailableError:
            stream.fail(
                grpc.StatusCode.UNAVAILABLE, "database unavailable; re-send unacked batches"
            )
            return
        except asyncpg.ForeignKeyViolationError:
            stream.fail(grpc.StatusCode.UNAUTHENTICATED, "this VPS has been removed")
            return
        except Exception:
            logger.exception("batch %s of VPS %d failed", batch.batch_id, stream.vps_id)
            stream.fail(grpc.StatusCode.INTERNAL, "the batch could not be stored; re-send it")
            return
        if result.duplicate:
            ack.duplicate = True
        else:
            ack.accepted = result.accepted
            ack.rejected = validated.rejected
            ack.error = validated.error
        stream.push(agent_pb2.MessageToAgent(batch_ack=ack))

    async def _write_loop(
        self,
        stream: AgentStream,
        context: grpc.aio.ServicerContext[agent_pb2.MessageToServer, agent_pb2.MessageToAgent],
    ) -> None:
        while (message := await stream.outbox.get()) is not None:
            try:
                await context.write(message)
            except Exception as error:  # the peer went away; the read loop notices too
                logger.debug("write to VPS %d failed: %r", stream.vps_id, error)
                stream.fail(grpc.StatusCode.UNAVAILABLE, "stream write failed")
                return

"""The agent's side of the one long-lived gRPC stream to the command side.

Delivery is at-least-once: a batch stays in the spool until a BatchAck names
it, every (re)connect re-sends whatever is still spooled with its original
batch_id, and the server's idempotent append turns that into exactly-once rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import platform
import random
import socket
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias

import grpc
import grpc.aio
import psutil

from agent.spool import SnapshotSpool
from agent.stats import AgentStats
from proto.options import CLIENT_CHANNEL_OPTIONS, RETRY_AFTER_FIELD
from proto.vpsmon.v1 import agent_pb2, agent_pb2_grpc
from vpsmon import constants
from vpsmon.errors import ProtocolError, StreamError

log = logging.getLogger(__name__)

Call: TypeAlias = grpc.aio.StreamStreamCall[agent_pb2.MessageToServer, agent_pb2.MessageToAgent]


class Backoff:
    """Exponential backoff with full jitter: spreads a fleet's reconnects out
    after a server restart instead of having every agent retry in lockstep."""

    def __init__(
        self,
        base: float = constants.RECONNECT_BACKOFF_BASE_S,
        cap: float = constants.RECONNECT_BACKOFF_CAP_S,
        rng: random.Random | None = None,
    ) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def ceiling(self, attempt: int) -> float:
        return min(self.cap, self.base * 2.0 ** min(attempt, 64))

    def next_delay(self) -> float:
        delay = self._rng.uniform(0.0, self.ceiling(self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


def agent_version() -> str:
    try:
        return importlib.metadata.version("vpsmon")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def host_handshake(token: str) -> agent_pb2.AgentHandshake:
    return agent_pb2.AgentHandshake(
        agent_token=token,
        agent_version=agent_version(),
        hostname=socket.gethostname(),
        os=f"{platform.system()} {platform.release()} {platform.machine()}",
        boot_time_unix_ms=int(psutil.boot_time() * 1000),
    )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class AgentClient:
    """Streams spooled batches to the server; ``run()`` until cancelled."""

    def __init__(
        self,
        server: str,
        token: str,
        spool: SnapshotSpool,
        *,
        on_config: Callable[[agent_pb2.AgentConfig], object] = lambda _config: None,
        tls: bool = False,
        ca_file: Path | None = None,
        max_in_flight: int = constants.BATCHES_IN_FLIGHT_PER_STREAM,
        heartbeat_interval_s: float = constants.AGENT_HEARTBEAT_INTERVAL_S,
        handshake_timeout_s: float = constants.AGENT_HANDSHAKE_TIMEOUT_S,
        ack_timeout_s: float = constants.AGENT_ACK_TIMEOUT_S,
        backoff: Backoff | None = None,
        stats: AgentStats | None = None,
    ) -> None:
        self.server = server
        self._token = token
        self.spool = spool
        self._on_config = on_config
        self._tls = tls
        self._ca_file = ca_file
        self._max_in_flight = max_in_flight
        self._heartbeat_interval = heartbeat_interval_s
        self._handshake_timeout = handshake_timeout_s
        self._ack_timeout = ack_timeout_s
        self.backoff = backoff or Backoff()
        self.stats = stats if stats is not None else AgentStats()
        self.vps_id: int | None = None
        self._queue: deque[str] = deque()
        self._in_flight: dict[str, float] = {}
        self._active = False
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._next_message_id = 0

    @property
    def connected(self) -> bool:
        return self._active

    def submit(self, batch: agent_pb2.PerformanceSnapshotBatch) -> None:
        """Spool ``batch`` durably, then queue it on the live stream (if any)."""
        self.spool.add(batch)
        if self._active:
            self._queue.append(batch.batch_id)
            self._wake.set()

    async def wait_drained(self, grace_s: float) -> bool:
        """True once every spooled batch is acked, False after ``grace_s``.

        The stream may break and reconnect meanwhile: a shutdown that comes
        while a batch waits for its ack still delivers it if the server is
        back within the grace period. What is left stays spooled and is
        re-sent, with its batch id, on the next start.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                while len(self.spool):
                    self._changed.clear()
                    await self._changed.wait()
        return not len(self.spool)

    async def run(self) -> None:
        """Connect, stream and reconnect forever; cancel the task to stop."""
        failures = 0  # consecutive failures: only the first of a streak is a WARNING
        while True:
            connects = self.stats.connects
            pause = 0.0  # at least this long before the next attempt (server's retry-after)
            try:
                await self._session()
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                    # Retrying fast cannot help; the operator must fix the config.
                    log.error(
                        "server %s rejected the agent token (bad or revoked: %s); "
                        "fix token/token_file in the agent config; retrying every %.0f s",
                        self.server,
                        error.details(),
                        self.backoff.cap,
                    )
                    await asyncio.sleep(self.backoff.cap)
                    continue
                reason = f"{error.code().name} {error.details()}"
                if error.code() == grpc.StatusCode.ABORTED:
                    # Only a live agent sees this: another one took its VPS's stream.
                    log.error(
                        "server %s: %s; two agents may share this token; retrying in %.0f s",
                        self.server,
                        error.details(),
                        self.backoff.cap,
                    )
                    await asyncio.sleep(self.backoff.cap)
                    continue
                pause = max(pause, _retry_after_s(error))
            except (StreamError, TimeoutError, OSError, asyncio.InvalidStateError) as error:
                reason = str(error) or type(error).__name__
            except Exception as error:
                log.exception("unexpected error on the stream to %s", self.server)
                reason = repr(error)
            failures = 1 if self.stats.connects != connects else failures + 1
            delay = max(self.backoff.next_delay(), pause)
            log.log(
                logging.WARNING if failures == 1 else logging.INFO,
                "stream to %s: %s; reconnecting in %.1f s (%d batch(es) spooled)",
                self.server,
                reason,
                delay,
                len(self.spool),
            )
            await asyncio.sleep(delay)

    def _open_channel(self) -> grpc.aio.Channel:
        if not self._tls:
            return grpc.aio.insecure_channel(self.server, options=CLIENT_CHANNEL_OPTIONS)
        # Read the CA on every connect so a rotated certificate needs no restart.
        roots = self._ca_file.read_bytes() if self._ca_file is not None else None
        credentials = grpc.ssl_channel_credentials(root_certificates=roots)
        return grpc.aio.secure_channel(self.server, credentials, options=CLIENT_CHANNEL_OPTIONS)

    async def _write(self, call: Call, **payload: Any) -> None:
        self._next_message_id += 1
        await call.write(
            agent_pb2.MessageToServer(client_message_id=self._next_message_id, **payload)
        )

    async def _session(self) -> None:
        """One stream: handshake, then send and receive until something breaks."""
        channel = self._open_channel()
        call: Call | None = None
        attempt, acked = self.backoff.attempt, self.stats.batches_acked
        sent_before: int | None = None  # batches sent before this stream, once it is up
        try:
            call = agent_pb2_grpc.AgentCommunicationServiceStub(
                channel
            ).EstablishCommunicationStream()
            ack = await self._handshake(call)
            sent_before = self.stats.batches_sent
            self._start_streaming(ack)
            await self._exchange(call)
        finally:
            if sent_before is not None:
                self._hold_backoff_if_nothing_stored(attempt, acked, sent_before)
            self._stop_streaming()
            if call is not None:
                call.cancel()
            await channel.close(grace=None)

    async def _handshake(self, call: Call) -> agent_pb2.ServerHandshakeAck:
        """Introduce this host with its token; the server's answer names the VPS."""
        self._next_message_id = 0
        await self._write(call, agent_handshake=host_handshake(self._token))
        async with asyncio.timeout(self._handshake_timeout):
            reply = _expect(await call.read())
        if reply.WhichOneof("payload") != "handshake_ack":
            raise ProtocolError(f"expected handshake_ack, got {reply.WhichOneof('payload')}")
        return reply.handshake_ack

    def _start_streaming(self, ack: agent_pb2.ServerHandshakeAck) -> None:
        """Connected: apply the server's config and queue everything spooled for sending."""
        self.backoff.reset()
        self.stats.connects += 1
        self.vps_id = ack.vps_id
        if ack.HasField("config"):
            self._on_config(ack.config)
        self._queue = deque(self.spool.ids())
        self._in_flight.clear()
        self._active = True
        log.info(
            "connected to %s as VPS %d; %d spooled batch(es) to send",
            self.server,
            self.vps_id,
            len(self._queue),
        )

    async def _exchange(self, call: Call) -> None:
        """Send and receive at once until either side fails; raises what ended the stream."""
        tasks = [
            asyncio.create_task(self._send_loop(call)),
            asyncio.create_task(self._receive_loop(call)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raises the error that ended the stream
            raise StreamError("stream loop ended")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _hold_backoff_if_nothing_stored(self, attempt: int, acked: int, sent_before: int) -> None:
        """A handshake that worked but stored nothing (e.g. the server's database is down)
        does not count as a success: the next reconnect keeps backing off instead of
        hammering the server."""
        if sent_before < self.stats.batches_sent and self.stats.batches_acked == acked:
            self.backoff.attempt = attempt

    def _stop_streaming(self) -> None:
        """Disconnected: nothing is in flight; what is unacked stays spooled for the next stream."""
        self._active = False
        self._queue.clear()
        self._in_flight.clear()
        self._changed.set()

    async def _send_loop(self, call: Call) -> None:
        """Pipeline up to max_in_flight batches; heartbeat when idle."""
        loop = asyncio.get_running_loop()
        last_write = loop.time()
        while True:
            self._wake.clear()
            while self._queue and len(self._in_flight) < self._max_in_flight:
                batch_id = self._queue.popleft()
                batch = None if batch_id in self._in_flight else self.spool.get(batch_id)
                if batch is None:  # acked, dropped by the bound, or corrupt
                    continue
                self._in_flight[batch_id] = loop.time()
                await self._write(call, performance_batch=batch)
                self.stats.batches_sent += 1
                last_write = loop.time()
            now = loop.time()
            if now - last_write >= self._heartbeat_interval:
                await self._write(call, heartbeat=agent_pb2.Heartbeat(timestamp_unix_ms=_now_ms()))
                self.stats.heartbeats_sent += 1
                last_write = now
            timeout = last_write + self._heartbeat_interval - now
            if self._in_flight:
                oldest_id, sent_at = next(iter(self._in_flight.items()))
                if now - sent_at >= self._ack_timeout:
                    # The server keeps uncommitted batches unacked; a fresh stream re-sends them.
                    raise StreamError(f"no ack for batch {oldest_id} in {self._ack_timeout:.0f} s")
                timeout = min(timeout, sent_at + self._ack_timeout - now)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(timeout, 0.0)):
                    await self._wake.wait()

    async def _receive_loop(self, call: Call) -> None:
        while True:
            message = _expect(await call.read())
            kind = message.WhichOneof("payload")
            if kind == "batch_ack":
                self._handle_ack(message.batch_ack)
            elif kind == "agent_config":
                self._on_config(message.agent_config)
            elif kind == "heartbeat":
                log.debug("heartbeat from server")
            else:
                log.warning("ignoring unexpected %s from server", kind)

    def _handle_ack(self, ack: agent_pb2.BatchAck) -> None:
        """Any ack is final: re-sending a rejected batch cannot make it valid."""
        self._in_flight.pop(ack.batch_id, None)
        self.spool.remove(ack.batch_id)
        self.stats.batches_acked += 1
        if ack.duplicate:
            self.stats.duplicates += 1
            log.debug("batch %s was already stored (duplicate)", ack.batch_id)
        if ack.rejected or ack.error:
            self.stats.snapshots_rejected += ack.rejected
            log.warning(
                "server rejected %d snapshot(s) of batch %s (%d accepted): %s",
                ack.rejected,
                ack.batch_id,
                ack.accepted,
                ack.error or "no reason given",
            )
        self._wake.set()
        self._changed.set()


def _retry_after_s(error: grpc.aio.AioRpcError) -> float:
    """The wait a RESOURCE_EXHAUSTED status asks for (0 if none, capped)."""
    details = error.details() or ""
    if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or RETRY_AFTER_FIELD not in details:
        return 0.0
    try:
        seconds = float(details.rsplit(RETRY_AFTER_FIELD, 1)[1].split()[0])
    except (ValueError, IndexError):
        return 0.0
    return min(seconds, constants.RETRY_AFTER_MAX_S) if seconds > 0 else 0.0  # NaN: false


def _expect(message: object) -> agent_pb2.MessageToAgent:
    if not isinstance(message, agent_pb2.MessageToAgent):
        raise StreamError("server closed the stream")
    return message

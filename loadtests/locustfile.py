"""Locust users that behave like vpsmon agents.

Each user holds one long-lived ``EstablishCommunicationStream`` (the
synchronous gRPC API, made cooperative with gevent), handshakes with a token
from the pool, then in its task loop sends a batch of snapshots and waits
for that batch's ack. Every ack is one locust request: ``grpc`` /
``batch_ack``, response time = send to ack, response length = snapshots
accepted. A rejected, partially rejected or duplicate ack, an ack timeout
and a broken stream are failures. A batch whose ack never came is re-sent
with the same ``batch_id`` on the next stream, as the real agent does.

Environment:

- ``VPSMON_LOAD_TOKENS`` (required): JSON file, a list of agent tokens (or of
  ``vpsmon vps add --json`` objects); users take them round robin, so give
  one token per user. Snapshot timestamps are kept unique per token only
  within this process: do not share one token file between locust workers.
- ``VPSMON_LOAD_BATCH_SIZE``: snapshots per batch (default 100).
- ``VPSMON_LOAD_WAIT_SECONDS``: pause between batches (default 0).
- ``VPSMON_LOAD_ACK_TIMEOUT_SECONDS``: a batch not acked by then is a
  failure and its stream is replaced (default 30).
- ``VPSMON_LOAD_ACCOUNTING``: if set, a JSON file to which the exact
  per-run counts are written when the test stops (the harness compares
  them with the rows in the database).
- ``VPSMON_LOAD_FINAL_CSV``: if set, locust's request statistics in its
  ``--csv`` ``_stats.csv`` format, written once every user has stopped.
  (locust rewrites its own CSV once a second, so that file misses the last
  second of the run.)

``--host`` is ``grpc://HOST:PORT`` (or plain ``HOST:PORT``); plaintext only.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import queue
import random
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# `locust` has already monkey-patched the standard library (it does so on
# import); gRPC must be told to poll through gevent before any channel exists,
# or a blocked stream read would stall every user in this process.
import gevent  # type: ignore[import-untyped]
import grpc
import grpc.experimental.gevent
from locust import User, constant, events, task
from locust import stats as locust_stats
from locust.env import Environment

from proto.options import CLIENT_CHANNEL_OPTIONS
from proto.vpsmon.v1 import agent_pb2, agent_pb2_grpc
from tests.support.synthetic_agent import (
    BACKLOG_MS,
    batch_message,
    handshake_message,
    random_snapshot,
)

grpc.experimental.gevent.init_gevent()

TOKENS_ENV = "VPSMON_LOAD_TOKENS"
BATCH_SIZE_ENV = "VPSMON_LOAD_BATCH_SIZE"
WAIT_ENV = "VPSMON_LOAD_WAIT_SECONDS"
ACK_TIMEOUT_ENV = "VPSMON_LOAD_ACK_TIMEOUT_SECONDS"
ACCOUNTING_ENV = "VPSMON_LOAD_ACCOUNTING"
FINAL_CSV_ENV = "VPSMON_LOAD_FINAL_CSV"

REQUEST_TYPE = "grpc"
BATCH_ACK = "batch_ack"
HANDSHAKE = "handshake"

# Snapshots are 1 ms apart per VPS, starting BACKLOG_MS (a day) back: even
# 50,000 snapshots/s for the harness's 10-minute maximum only advance a VPS's
# clock by about 8 hours.
# After a failed handshake, wait this long before the next attempt.
RECONNECT_DELAY_SECONDS = 1.0
# How long a stopping user waits for the ack of a batch it already sent.
STOP_DRAIN_SECONDS = 5.0


def _env_number(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = float(raw)
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {raw}")
    return value


BATCH_SIZE = int(_env_number(BATCH_SIZE_ENV, 100, 1))
WAIT_SECONDS = _env_number(WAIT_ENV, 0.0, 0.0)
ACK_TIMEOUT_SECONDS = _env_number(ACK_TIMEOUT_ENV, 30.0, 0.1)


def load_tokens(path: str | None) -> list[str]:
    if not path:
        raise RuntimeError(f"{TOKENS_ENV} must name a JSON file with agent tokens")
    data = json.loads(Path(path).read_text())
    tokens = [item["agent_token"] if isinstance(item, dict) else item for item in data]
    if not tokens or not all(isinstance(t, str) and t for t in tokens):
        raise RuntimeError(f"{path}: expected a non-empty list of agent tokens")
    return tokens


def grpc_target(host: str | None) -> str:
    if not host:
        raise RuntimeError("give the command side as --host grpc://HOST:PORT")
    return host.removeprefix("grpc://").rstrip("/")


@dataclass
class Accounting:
    """Exact counts for this process, independent of locust's rounded statistics."""

    batches_sent: int = 0  # distinct batches (a re-send is not counted again)
    snapshots_sent: int = 0
    batches_acked: int = 0
    snapshots_accepted: int = 0
    snapshots_rejected: int = 0
    duplicate_batches: int = 0
    # Snapshots of re-sent batches acked as duplicates: committed by an
    # earlier attempt whose ack was lost (every generated snapshot is valid).
    duplicate_snapshots: int = 0
    stream_failures: int = 0
    # Batches still waiting for an ack when the test stopped: their rows may
    # or may not have been committed.
    unacked_batches: int = 0
    unacked_snapshots: int = 0

    def write(self, path: str) -> None:
        tmp = Path(f"{path}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)


accounting = Accounting()
_token_counter = itertools.count()
_tokens: list[str] = []
# Last timestamp handed out per token: users sharing a token never collide.
_clocks: dict[str, int] = {}


# locust's EventHook.add_listener is unannotated.
@events.test_start.add_listener  # type: ignore[untyped-decorator]
def _on_test_start(environment: Environment, **_: Any) -> None:
    _tokens[:] = load_tokens(os.environ.get(TOKENS_ENV))


@events.test_stop.add_listener  # type: ignore[untyped-decorator]
def _on_test_stop(environment: Environment, **_: Any) -> None:
    if path := os.environ.get(ACCOUNTING_ENV):
        accounting.write(path)
    if path := os.environ.get(FINAL_CSV_ENV):
        write_final_stats_csv(environment, path)


def write_final_stats_csv(environment: Environment, path: str) -> None:
    tmp = Path(f"{path}.tmp")
    with tmp.open("w", newline="") as file:
        writer = locust_stats.StatsCSV(environment, locust_stats.PERCENTILES_TO_REPORT)
        writer.requests_csv(csv.writer(file))
    tmp.replace(path)


class StreamBrokenError(Exception):
    """The stream ended or failed; the message says how."""


class AckTimeoutError(Exception):
    pass


class LocustAgentStream:
    """A locust user's synthetic agent (gevent): one bidirectional stream, driven
    through two queues; its messages come from tests/support/synthetic_agent.py.

    A writer queue feeds the request iterator gRPC consumes; a reader
    greenlet moves every reply (and finally the stream's end) into an inbox.
    Callers wait on the inbox only, so a timeout or a locust kill never lands
    inside a gRPC read: an interrupted ``next()`` on the response iterator
    cannot be resumed (gRPC refuses a second pending receive), the inbox can.
    The stdlib queues are cooperative here because locust has monkey-patched
    them.
    """

    def __init__(self, target: str) -> None:
        self._channel = grpc.insecure_channel(target, options=CLIENT_CHANNEL_OPTIONS)
        self._outbox: queue.SimpleQueue[agent_pb2.MessageToServer | None] = queue.SimpleQueue()
        self._inbox: queue.SimpleQueue[agent_pb2.MessageToAgent | StreamBrokenError] = (
            queue.SimpleQueue()
        )
        self._ended: StreamBrokenError | None = None
        self._message_ids = itertools.count(1)
        stub = agent_pb2_grpc.AgentCommunicationServiceStub(self._channel)
        self._replies: Iterator[agent_pb2.MessageToAgent] = stub.EstablishCommunicationStream(
            self._requests()
        )
        self._reader = gevent.spawn(self._read)

    def _requests(self) -> Iterator[agent_pb2.MessageToServer]:
        while (message := self._outbox.get()) is not None:
            yield message

    def _read(self) -> None:
        try:
            for reply in self._replies:
                self._inbox.put(reply)
            self._inbox.put(StreamBrokenError("the server ended the stream"))
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            details = error.details() if isinstance(error, grpc.Call) else str(error)
            self._inbox.put(StreamBrokenError(f"{code}: {details}"))
        except Exception as error:  # anything else ends this stream, not the user
            self._inbox.put(StreamBrokenError(repr(error)))

    def send(self, message: agent_pb2.MessageToServer) -> None:
        message.client_message_id = next(self._message_ids)
        self._outbox.put(message)

    def receive(self, timeout: float) -> agent_pb2.MessageToAgent:
        if self._ended is not None:
            raise self._ended
        try:
            item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise AckTimeoutError from None
        if isinstance(item, StreamBrokenError):
            self._ended = item
            raise item
        return item

    def receive_payload(self, kind: str, timeout: float) -> agent_pb2.MessageToAgent:
        """The next message of this kind; agent_config and heartbeat pushes are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self.receive(max(deadline - time.monotonic(), 0.001))
            except AckTimeoutError:
                raise AckTimeoutError(f"no {kind} within {timeout:g} s") from None
            if message.WhichOneof("payload") == kind:
                return message

    def close(self) -> None:
        """Half-close, then cancel whatever the server has not finished."""
        self._outbox.put(None)
        cancel = getattr(self._replies, "cancel", None)
        if cancel is not None:
            cancel()
        self._channel.close()
        self._reader.join(timeout=5)


class AgentUser(User):
    """An agent with a deep backlog: one stream, one batch in flight at a time."""

    wait_time = constant(WAIT_SECONDS)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self._number = next(_token_counter)
        self._token = ""
        self._target = ""
        self._stream: LocustAgentStream | None = None
        self._pending: agent_pb2.MessageToServer | None = None  # sent, not yet acked
        self._resend = False  # the pending batch went out before, on a stream that broke
        self._sent_at: float | None = None  # perf_counter when it went out on this stream
        self._random = random.Random(self._number)

    def on_start(self) -> None:
        if not _tokens:  # users can start before test_start listeners in some runners
            _tokens[:] = load_tokens(os.environ.get(TOKENS_ENV))
        self._token = _tokens[self._number % len(_tokens)]
        self._target = grpc_target(self.host)
        _clocks.setdefault(self._token, time.time_ns() // 1_000_000 - BACKLOG_MS)

    def on_stop(self) -> None:
        try:
            # Killed while a batch was on the wire (locust can kill a user that is just
            # waking from wait_time): its ack is still coming, so take it.
            stream, message, started = self._stream, self._pending, self._sent_at
            if stream is not None and message is not None and started is not None:
                self._await_ack(stream, message, started, STOP_DRAIN_SECONDS)
        finally:
            if self._pending is not None:
                accounting.unacked_batches += 1
                accounting.unacked_snapshots += len(self._pending.performance_batch.snapshots)
                self._pending = None
            self._close_stream()

    def _fire(
        self, name: str, started: float, length: int, exception: BaseException | None
    ) -> None:
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exception,
            context={"token_index": self._number % max(len(_tokens), 1)},
        )

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _connect(self) -> LocustAgentStream:
        started = time.perf_counter()
        stream = LocustAgentStream(self._target)
        stream.send(
            handshake_message(
                self._token,
                agent_version="vpsmon-locust",
                hostname=f"{socket.gethostname()}-load-{self._number}",
                boot_time_unix_ms=int((time.time() - 3600) * 1000),
            )
        )
        try:
            stream.receive_payload("handshake_ack", ACK_TIMEOUT_SECONDS)
        except (StreamBrokenError, AckTimeoutError) as error:
            stream.close()
            accounting.stream_failures += 1
            self._fire(HANDSHAKE, started, 0, error)
            raise
        self._fire(HANDSHAKE, started, 0, None)
        return stream

    def _new_batch(self) -> agent_pb2.MessageToServer:
        first = _clocks[self._token] + 1
        _clocks[self._token] = first + BATCH_SIZE - 1
        batch = batch_message([random_snapshot(self._random, first + i) for i in range(BATCH_SIZE)])
        accounting.batches_sent += 1
        accounting.snapshots_sent += BATCH_SIZE
        return batch

    @task
    def send_batch(self) -> None:
        if self._stream is None:
            try:
                self._stream = self._connect()
            except (StreamBrokenError, AckTimeoutError):
                gevent.sleep(RECONNECT_DELAY_SECONDS)
                return
        self._resend = self._pending is not None
        if self._pending is None:
            self._pending = self._new_batch()
        self._sent_at = time.perf_counter()
        self._stream.send(self._pending)
        self._await_ack(self._stream, self._pending, self._sent_at, ACK_TIMEOUT_SECONDS)

    def _await_ack(
        self,
        stream: LocustAgentStream,
        message: agent_pb2.MessageToServer,
        started: float,
        timeout: float,
    ) -> None:
        """Wait for the ack of the batch just sent and record the outcome."""
        batch = message.performance_batch
        try:
            while True:
                reply = stream.receive_payload("batch_ack", timeout)
                if reply.batch_ack.batch_id == batch.batch_id:
                    break
        except (StreamBrokenError, AckTimeoutError) as error:
            self._sent_at = None
            # The batch stays pending and goes out again, same id, on a new stream.
            accounting.stream_failures += 1
            self._close_stream()
            self._fire(BATCH_ACK, started, 0, error)
            return
        ack = reply.batch_ack
        self._sent_at = None
        self._pending = None
        accounting.batches_acked += 1
        accounting.snapshots_accepted += ack.accepted
        accounting.snapshots_rejected += ack.rejected
        problem: Exception | None = None
        if ack.duplicate:
            accounting.duplicate_batches += 1
            if self._resend:
                accounting.duplicate_snapshots += len(batch.snapshots)
            problem = Exception(f"duplicate batch{' (re-sent)' if self._resend else ''}")
        elif ack.rejected:
            problem = Exception(f"{ack.rejected} snapshots rejected: {ack.error}")
        self._fire(BATCH_ACK, started, ack.accepted, problem)

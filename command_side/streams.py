"""Open agent streams, so that events elsewhere (token revoked, config changed) reach them."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Iterator

from proto.vpsmon.v1 import agent_pb2
from vpsmon.errors import VpsmonError


class ConnectedAgent:
    """The server's end of one agent's stream: an outbox for messages to the agent
    and a way to end the stream."""

    def __init__(self, vps_id: int, token: str) -> None:
        self.vps_id = vps_id
        self.token = token
        self.stream_id = uuid.uuid4()  # its claim in agent_streams
        self.outbox: asyncio.Queue[agent_pb2.MessageToAgent | None] = asyncio.Queue()
        # Why the stream ends (command_side/grpc_status.py gives its status).
        self.failure: VpsmonError | None = None
        self.ended = asyncio.Event()
        self._next_message_id = 0

    def push(self, message: agent_pb2.MessageToAgent) -> None:
        self._next_message_id += 1
        message.server_message_id = self._next_message_id
        self.outbox.put_nowait(message)

    def end(self, failure: VpsmonError) -> None:
        """End the stream with ``failure`` once its in-flight batches are acked;
        the first reason given is the one the agent sees."""
        if self.failure is None:
            self.failure = failure
        self.ended.set()


class StreamRegistry:
    def __init__(self) -> None:
        self._by_vps: dict[int, set[ConnectedAgent]] = defaultdict(set)

    def add(self, stream: ConnectedAgent) -> None:
        self._by_vps[stream.vps_id].add(stream)

    def remove(self, stream: ConnectedAgent) -> None:
        streams = self._by_vps.get(stream.vps_id)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._by_vps[stream.vps_id]

    def for_vps(self, vps_id: int) -> list[ConnectedAgent]:
        return list(self._by_vps.get(vps_id, ()))

    def __iter__(self) -> Iterator[ConnectedAgent]:
        return iter([s for streams in self._by_vps.values() for s in streams])

    def __len__(self) -> int:
        return sum(len(streams) for streams in self._by_vps.values())

"""A VPS as a versioned aggregate, folded from its own stream of events.

Shaped after eventsourcing's `Aggregate`: the state a command decides on comes
from the VPS's events, never from the projections, and each event must be the
next version (`mutate` refuses any other, as `CanMutateAggregate.mutate` does).
A command appends at `version + 1` (command_side/vps_commands.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from projections.vps_registry import upcast
from vpsmon.constants import (
    VPS_AGENT_CONFIG_CHANGED,
    VPS_DECOMMISSIONED,
    VPS_OWNER_CHANGED,
    VPS_REGISTERED,
    VPS_RENAMED,
)
from vpsmon.storage.event_log import StoredVpsEvent, read_vps_stream
from vpsmon.storage.types import Queryable


@dataclass(frozen=True)
class VpsState:
    """What commands need to know of one VPS, as of ``version`` (0: no event yet)."""

    vps_id: int
    version: int = 0
    live: bool = False
    name: str = ""
    owner_id: int | None = None
    # The agent settings overridden for this VPS (None: the server's default), by name.
    agent_overrides: tuple[tuple[str, int | None], ...] = ()

    def mutate(self, event: StoredVpsEvent) -> VpsState:
        """The state after ``event``, which must be this VPS's next one."""
        if event.vps_id != self.vps_id or event.version != self.version + 1:
            raise ValueError(
                f"event {event.event_id} is version {event.version} of VPS {event.vps_id},"
                f" not version {self.version + 1} of VPS {self.vps_id}"
            )
        payload = upcast(event).payload
        changes: dict[str, Any] = {"version": event.version}
        if event.event_type == VPS_REGISTERED:
            changes.update(live=True, name=payload["name"], owner_id=payload["owner_id"])
        elif event.event_type == VPS_RENAMED:
            changes["name"] = payload["name"]
        elif event.event_type == VPS_OWNER_CHANGED:
            changes["owner_id"] = payload["owner_id"]
        elif event.event_type == VPS_AGENT_CONFIG_CHANGED:
            changes["agent_overrides"] = tuple(sorted(payload.items()))
        elif event.event_type == VPS_DECOMMISSIONED:
            changes["live"] = False
        return replace(self, **changes)


@dataclass(frozen=True)
class NewVpsEvent:
    """An event a command decided on, not yet appended."""

    event_type: str
    payload: dict[str, Any]


async def load_vps(conn: Queryable, vps_id: int) -> VpsState:
    """The VPS as its events leave it (version 0 for an id that has none)."""
    state = VpsState(vps_id)
    for event in await read_vps_stream(conn, vps_id):
        state = state.mutate(event)
    return state

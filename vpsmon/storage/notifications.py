"""NOTIFY payloads are hints that name ids, never data.

Any database login, the read-only ``vpsmon_reader`` included, can send any
NOTIFY on any channel, and PostgreSQL cannot revoke that. So vpsmon's
payloads carry only comma-separated ids; a listener re-reads the truth from
tables that only vpsmon's own roles may write, ignores payloads that do not
parse, and keeps a bounded set of pending ids. A flood of forged
notifications then costs a few re-reads of true values and no memory.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable

from vpsmon.constants import PG_BIGINT_MAX

logger = logging.getLogger(__name__)

# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
MAX_PAYLOAD_BYTES = 7000
# Past this many distinct pending ids a listener re-reads everything once instead.
MAX_PENDING_IDS = 10_000
_IDS = re.compile(r"[1-9][0-9]{0,18}(?:,[1-9][0-9]{0,18})*")


def encode_ids(ids: Iterable[int]) -> list[str]:
    """Payloads of comma-separated ids, each under PostgreSQL's size limit."""
    payloads: list[str] = []
    current = ""
    for item in (str(i) for i in ids):
        if current and len(current) + 1 + len(item) > MAX_PAYLOAD_BYTES:
            payloads.append(current)
            current = ""
        current = f"{current},{item}" if current else item
    if current:
        payloads.append(current)
    return payloads


def decode_ids(payload: str) -> list[int] | None:
    """The ids of a well-formed payload; None for anything else."""
    if len(payload) > MAX_PAYLOAD_BYTES or _IDS.fullmatch(payload) is None:
        return None
    ids = [int(item) for item in payload.split(",")]
    return ids if max(ids) <= PG_BIGINT_MAX else None


class PendingIds:
    """Ids named by notifications since the last ``take()``.

    ``on_notification`` has asyncpg's listener signature. Malformed payloads
    are counted and dropped; the set never holds more than ``limit`` ids.
    Listeners of several channels pass one ``ready`` event to wait on them all
    (and take from each after waking).
    """

    def __init__(
        self, channel: str, limit: int = MAX_PENDING_IDS, ready: asyncio.Event | None = None
    ) -> None:
        self.channel = channel
        self.limit = limit
        self.malformed = 0
        self._ids: set[int] = set()
        self._everything = False
        self.ready = ready or asyncio.Event()

    def on_notification(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        ids = decode_ids(payload) if isinstance(payload, str) else None
        if ids is None:
            self.malformed += 1
            if self.malformed == 1 or self.malformed % 1000 == 0:
                logger.warning(
                    "ignored %d malformed notification(s) on %s (someone with a database "
                    "login sends them; vpsmon's own payloads are ids)",
                    self.malformed,
                    self.channel,
                )
            return
        if not self._everything:
            self._ids.update(ids)
            if len(self._ids) > self.limit:
                self._ids.clear()
                self._everything = True
        self.ready.set()

    async def wait(self, timeout_s: float) -> None:
        """Until something is pending, or ``timeout_s`` passes."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.ready.wait()
        except TimeoutError:
            pass

    def take(self) -> set[int] | None:
        """The pending ids (None: too many, re-read everything) and reset."""
        ids: set[int] | None = None if self._everything else self._ids
        self._ids = set()
        self._everything = False
        self.ready.clear()
        return ids

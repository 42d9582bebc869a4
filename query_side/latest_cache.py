"""The latest-values projection held in memory, so /metrics/latest costs no query.

Each query-side worker warms it from `vps_latest` and then follows the NOTIFY
that the command side sends with every commit. A notification only names
VPS ids: the cache re-reads those rows from `vps_latest`, so a forged one
(any SQL login can NOTIFY) can show nothing but the true values. When the
listening connection drops (a database restart) it reconnects and re-warms
before serving the updates again, so the cache is never silently stale. SSE
viewers subscribe here: one cache update fans out to all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

import asyncpg

from vpsmon.constants import LATEST_CHANNEL
from vpsmon.metrics import METRIC_COLUMNS
from vpsmon.self_metrics import SELF_METRICS
from vpsmon.storage.notifications import PendingIds

logger = logging.getLogger(__name__)

Latest = dict[str, Any]
_SELECT = f"SELECT {', '.join(METRIC_COLUMNS)} FROM vps_latest"


class LatestValuesCache:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._values: dict[int, Latest] = {}
        self._subscribers: dict[int, set[asyncio.Queue[Latest]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self.connected = False
        self.hints = PendingIds(LATEST_CHANNEL)

    def get(self, vps_id: int) -> Latest | None:
        return self._values.get(vps_id)

    def subscribe(self, vps_id: int) -> asyncio.Queue[Latest]:
        # Bounded: a viewer that cannot keep up misses intermediate values,
        # which is right for "latest".
        queue: asyncio.Queue[Latest] = asyncio.Queue(maxsize=16)
        self._subscribers[vps_id].add(queue)
        return queue

    def unsubscribe(self, vps_id: int, queue: asyncio.Queue[Latest]) -> None:
        subscribers = self._subscribers.get(vps_id)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[vps_id]

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    def start(self) -> None:
        SELF_METRICS.latest_cache_disconnected.set(1)
        self._task = asyncio.create_task(self._follow(), name="latest-values-cache")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _apply(self, row: Latest) -> None:
        if self._values.get(row["vps_id"]) == row:
            return
        self._values[row["vps_id"]] = row
        for queue in self._subscribers.get(row["vps_id"], ()):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(row)

    async def _reread(self, conn: asyncpg.Connection, vps_ids: set[int] | None) -> int:
        """Take the rows of ``vps_ids`` (None: all) from the table; drop those gone."""
        if vps_ids is None:
            rows = await conn.fetch(_SELECT)
            asked = set(self._values)
        else:
            rows = await conn.fetch(f"{_SELECT} WHERE vps_id = ANY($1::int[])", list(vps_ids))
            asked = vps_ids
        for vps_id in asked - {row["vps_id"] for row in rows}:
            self._values.pop(vps_id, None)  # removed, or never known: a forged id
        for row in rows:
            self._apply(dict(row))
        return len(rows)

    async def _follow(self) -> None:
        delay = 0.2
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                self.hints.take()
                await conn.add_listener(LATEST_CHANNEL, self.hints.on_notification)
                # Listen first, then warm: nothing committed in between is lost.
                warmed = await self._reread(conn, None)
                self.connected = True
                SELF_METRICS.latest_cache_disconnected.set(0)
                self.ready.set()
                delay = 0.2
                logger.info("latest-values cache warm: %d VPSes", warmed)
                while not conn.is_closed():
                    await self.hints.wait(1.0)
                    vps_ids = self.hints.take()
                    if vps_ids is None or vps_ids:
                        await self._reread(conn, vps_ids)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("latest-values listener lost (%r); reconnecting", error)
            finally:
                self.connected = False
                SELF_METRICS.latest_cache_disconnected.set(1)
                if conn is not None and not conn.is_closed():
                    await conn.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

"""Running a long-lived command-side process until the operator stops it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable

from vpsmon.settings import Settings

Service = Callable[[Settings, asyncio.Event], Awaitable[None]]


def run_until_signalled(service: Service, settings: Settings) -> int:
    """Run ``service`` in a new event loop; SIGINT or SIGTERM sets its stop event."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await service(settings, stop)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0

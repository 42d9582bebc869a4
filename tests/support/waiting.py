"""Waiting for a condition instead of sleeping for a guess."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

# Polling starts fast (most conditions hold within milliseconds) and slows
# down for the ones that take seconds, so that a slow wait does not keep a
# database busy answering the same question.
FIRST_POLL_S = 0.005
LAST_POLL_S = 0.05


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    what: str = "the condition",
    timeout: float = 10.0,
) -> None:
    """Poll ``condition`` (plain or async) until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = FIRST_POLL_S
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(pause)
        pause = min(pause * 2, LAST_POLL_S)

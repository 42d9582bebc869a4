"""The real `vpsmon` command line, run as a subprocess against a test database."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Literal

Stdin = bytes | Literal["tty", "devnull"]


async def run_cli(
    dsn: str, *args: str, backend: str = "postgresql", stdin: Stdin = "devnull"
) -> tuple[int, str, str]:
    """Run `vpsmon ARGS` on ``dsn`` as VPSMON_BACKEND=``backend``, with stdin from
    bytes, /dev/null or a pseudo-terminal: (exit status, stdout, stderr)."""
    env = {**os.environ, "VPSMON_DATABASE_URL": dsn, "VPSMON_BACKEND": backend}
    terminal: tuple[int, int] | None = os.openpty() if stdin == "tty" else None
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "vpsmon.cli",
            *args,
            env=env,
            stdin=(
                terminal[1]
                if terminal is not None
                else asyncio.subprocess.DEVNULL
                if stdin == "devnull"
                else asyncio.subprocess.PIPE
            ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate(stdin if isinstance(stdin, bytes) else None)
    finally:
        if terminal is not None:
            os.close(terminal[0])
            os.close(terminal[1])
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()

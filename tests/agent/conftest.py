"""Fixtures the agent's tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.fake_command_side import FakeServer, fake_command_side


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeServer, str]]:
    """The fake command side and its address."""
    async with fake_command_side() as running:
        yield running

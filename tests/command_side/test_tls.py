"""TLS on the command side: half a key pair is a start-up error, a full pair serves TLS."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest
from pydantic import ValidationError

from proto.options import CLIENT_CHANNEL_OPTIONS
from proto.vpsmon.v1 import agent_pb2, agent_pb2_grpc
from tests.support.command_side import command_side
from tests.support.synthetic_agent import handshake_message
from vpsmon.settings import Settings


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 and its key."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize(("given", "missing"), [("CERT", "KEY"), ("KEY", "CERT")])
def test_half_a_key_pair_is_an_error(
    monkeypatch: pytest.MonkeyPatch, key_pair: tuple[Path, Path], given: str, missing: str
) -> None:
    cert, key = key_pair
    monkeypatch.setenv(f"VPSMON_GRPC_TLS_{given}", str(cert if given == "CERT" else key))
    with pytest.raises(ValidationError, match=f"VPSMON_GRPC_TLS_{missing} is not"):
        Settings()


def test_a_missing_pem_file_is_an_error(key_pair: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"VPSMON_GRPC_TLS_KEY: .* is not a readable file"):
        Settings(grpc_tls_cert=str(key_pair[0]), grpc_tls_key=str(tmp_path / "nope.pem"))


async def test_a_full_key_pair_serves_tls_only(
    embedded_migrated_database: str, key_pair: tuple[Path, Path]
) -> None:
    cert, key = key_pair
    async with command_side(
        embedded_migrated_database, grpc_tls_cert=str(cert), grpc_tls_key=str(key)
    ) as side:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        async with grpc.aio.secure_channel(
            side.address, credentials, options=CLIENT_CHANNEL_OPTIONS
        ) as channel:
            call = agent_pb2_grpc.AgentCommunicationServiceStub(
                channel
            ).EstablishCommunicationStream()
            await call.write(handshake_message("vpsm_unknown"))
            # TLS carried the handshake; the server judged the (unknown) token.
            assert await call.code() == grpc.StatusCode.UNAUTHENTICATED
        async with grpc.aio.insecure_channel(side.address) as plain:
            call = agent_pb2_grpc.AgentCommunicationServiceStub(
                plain
            ).EstablishCommunicationStream()
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call.write(agent_pb2.MessageToServer())
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

"""The checked-in generated code matches agent.proto, and the wire contract is fixed."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf.message import Message

from proto.generate import PROTO_FILES, REPO_ROOT, generate, generated_files
from proto.vpsmon.v1 import agent_pb2


def test_generated_code_in_sync(tmp_path: Path) -> None:
    produced = generate(tmp_path)
    expected = sorted(name for proto_file in PROTO_FILES for name in generated_files(proto_file))
    assert sorted(path.relative_to(tmp_path).as_posix() for path in produced) == expected
    problems: list[str] = []
    for name in expected:
        checked_in = REPO_ROOT / name
        if not checked_in.is_file():
            problems.append(f"{name}: missing")
        elif checked_in.read_bytes() != (tmp_path / name).read_bytes():
            problems.append(f"{name}: differs from freshly generated code")
    assert not problems, (
        "generated protobuf code is out of sync with the .proto sources:\n  "
        + "\n  ".join(problems)
        + "\nRun `python -m proto.generate` from the repository root and check in the result."
    )


def test_performance_batch_round_trip() -> None:
    message = agent_pb2.MessageToServer(
        client_message_id=7,
        performance_batch=agent_pb2.PerformanceSnapshotBatch(
            batch_id="0b9d5e1c-2f4a-4c1e-9a57-3d0f6a1b2c3d",
            snapshots=[
                agent_pb2.PerformanceSnapshot(
                    timestamp_unix_ms=1_700_000_000_123,
                    cpu_overall_usage_percent=12.5,
                    memory_usage_bytes=1 << 30,
                    memory_total_bytes=4 << 30,
                    disk_total_io_read_bytes_per_sec=1_000,
                    disk_total_io_write_bytes_per_sec=2_000,
                    network_interfaces=[
                        agent_pb2.NetworkInterfaceStats(
                            interface_name="eth0", rx_bytes_per_sec=300, tx_bytes_per_sec=400
                        ),
                    ],
                ),
            ],
        ),
    )
    decoded = agent_pb2.MessageToServer.FromString(message.SerializeToString())
    assert decoded == message
    assert decoded.WhichOneof("payload") == "performance_batch"
    snapshot = decoded.performance_batch.snapshots[0]
    assert snapshot.memory_total_bytes == 4 << 30
    assert snapshot.network_interfaces[0].interface_name == "eth0"


# Every field of the wire contract (docs/WIRE_PROTOCOL.md): (message, field, number, oneof or None).
CONTRACT: list[tuple[type[Message], str, int, str | None]] = [
    (agent_pb2.MessageToServer, "client_message_id", 1, None),
    (agent_pb2.MessageToServer, "agent_handshake", 2, "payload"),
    (agent_pb2.MessageToServer, "performance_batch", 3, "payload"),
    (agent_pb2.MessageToServer, "heartbeat", 4, "payload"),
    (agent_pb2.MessageToAgent, "server_message_id", 1, None),
    (agent_pb2.MessageToAgent, "handshake_ack", 2, "payload"),
    (agent_pb2.MessageToAgent, "agent_config", 3, "payload"),
    (agent_pb2.MessageToAgent, "batch_ack", 4, "payload"),
    (agent_pb2.MessageToAgent, "heartbeat", 5, "payload"),
    (agent_pb2.AgentHandshake, "agent_token", 1, None),
    (agent_pb2.AgentHandshake, "agent_version", 2, None),
    (agent_pb2.AgentHandshake, "hostname", 3, None),
    (agent_pb2.AgentHandshake, "os", 4, None),
    (agent_pb2.AgentHandshake, "boot_time_unix_ms", 5, None),
    (agent_pb2.ServerHandshakeAck, "vps_id", 1, None),
    (agent_pb2.ServerHandshakeAck, "config", 2, None),
    (agent_pb2.AgentConfig, "metrics_collect_interval_seconds", 1, None),
    (agent_pb2.AgentConfig, "metrics_upload_batch_max_size", 2, None),
    (agent_pb2.AgentConfig, "metrics_upload_interval_seconds", 3, None),
    (agent_pb2.PerformanceSnapshotBatch, "batch_id", 1, None),
    (agent_pb2.PerformanceSnapshotBatch, "snapshots", 2, None),
    (agent_pb2.PerformanceSnapshot, "timestamp_unix_ms", 1, None),
    (agent_pb2.PerformanceSnapshot, "cpu_overall_usage_percent", 2, None),
    (agent_pb2.PerformanceSnapshot, "memory_usage_bytes", 3, None),
    (agent_pb2.PerformanceSnapshot, "memory_total_bytes", 4, None),
    (agent_pb2.PerformanceSnapshot, "disk_total_io_read_bytes_per_sec", 5, None),
    (agent_pb2.PerformanceSnapshot, "disk_total_io_write_bytes_per_sec", 6, None),
    (agent_pb2.PerformanceSnapshot, "network_interfaces", 7, None),
    (agent_pb2.NetworkInterfaceStats, "interface_name", 1, None),
    (agent_pb2.NetworkInterfaceStats, "rx_bytes_per_sec", 2, None),
    (agent_pb2.NetworkInterfaceStats, "tx_bytes_per_sec", 3, None),
    (agent_pb2.BatchAck, "batch_id", 1, None),
    (agent_pb2.BatchAck, "accepted", 2, None),
    (agent_pb2.BatchAck, "rejected", 3, None),
    (agent_pb2.BatchAck, "duplicate", 4, None),
    (agent_pb2.BatchAck, "error", 5, None),
    (agent_pb2.Heartbeat, "timestamp_unix_ms", 1, None),
]


@pytest.mark.parametrize(
    ("message", "name", "number", "oneof"),
    CONTRACT,
    ids=[f"{message.__name__}.{name}" for message, name, _, _ in CONTRACT],
)
def test_contract_field_numbers(
    message: type[Message], name: str, number: int, oneof: str | None
) -> None:
    field = message.DESCRIPTOR.fields_by_name.get(name)
    assert field is not None, f"{message.__name__}.{name} is missing"
    assert field.number == number, f"{message.__name__}.{name} renumbered to {field.number}"
    containing = field.containing_oneof.name if field.containing_oneof is not None else None
    assert containing == oneof


def test_service_shape() -> None:
    service = agent_pb2.DESCRIPTOR.services_by_name["AgentCommunicationService"]
    assert service.full_name == "vpsmon.v1.AgentCommunicationService"
    method = service.methods_by_name["EstablishCommunicationStream"]
    assert method.input_type.full_name == "vpsmon.v1.MessageToServer"
    assert method.output_type.full_name == "vpsmon.v1.MessageToAgent"
    assert method.client_streaming
    assert method.server_streaming

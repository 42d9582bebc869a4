"""The agent's keepalive pings must be welcome on the server, or gRPC drops the
connection with too_many_pings."""

from __future__ import annotations

from proto.options import CLIENT_CHANNEL_OPTIONS, SERVER_OPTIONS


def test_client_pings_no_more_often_than_the_server_accepts() -> None:
    client = dict(CLIENT_CHANNEL_OPTIONS)
    server = dict(SERVER_OPTIONS)
    assert (
        client["grpc.keepalive_time_ms"]
        >= server["grpc.http2.min_recv_ping_interval_without_data_ms"]
    )
    assert server["grpc.keepalive_permit_without_calls"] == 1
    assert client["grpc.max_send_message_length"] <= server["grpc.max_receive_message_length"]

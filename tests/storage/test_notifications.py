"""NOTIFY payloads are parsed strictly and bounded: they are hints, not data."""

from __future__ import annotations

import pytest

from vpsmon.storage.notifications import MAX_PAYLOAD_BYTES, PendingIds, decode_ids, encode_ids


def test_encoded_ids_round_trip_in_payloads_under_the_limit() -> None:
    ids = list(range(1, 5000))
    payloads = encode_ids(ids)
    assert len(payloads) > 1
    assert all(len(p) <= MAX_PAYLOAD_BYTES for p in payloads)
    assert [i for p in payloads for i in decode_ids(p) or []] == ids


@pytest.mark.parametrize(
    "payload",
    ["", " 1", "1,", ",1", "1,,2", "-1", "0", "01", "1e3", "1.5", "[1]", "9" * 20, "1," * 3500],
)
def test_anything_but_a_list_of_positive_ids_is_refused(payload: str) -> None:
    assert decode_ids(payload) is None


async def test_pending_ids_are_bounded_and_overflow_means_read_everything() -> None:
    pending = PendingIds("test", limit=10)
    pending.on_notification(None, 1, "test", "1,2,3")
    pending.on_notification(None, 1, "test", "garbage")
    pending.on_notification(None, 1, "test", 42)
    assert pending.malformed == 2
    assert pending.take() == {1, 2, 3}
    assert pending.take() == set()
    pending.on_notification(None, 1, "test", ",".join(str(i) for i in range(1, 12)))
    pending.on_notification(None, 1, "test", "5")
    assert pending.take() is None
    assert pending.take() == set()

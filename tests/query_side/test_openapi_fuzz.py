"""Schemathesis against the served OpenAPI document: for every operation, a bounded number
of generated requests (valid and invalid) gets no 5xx, and every response matches what the
document says about it (status code, content type, body schema, headers)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis

from tests.support.query_side import Fleet
from tests.support.synthetic_agent import snapshot

# Generated cases per operation in the fuzzing phase (the examples and coverage phases
# add a few of their own); deterministic, so a run is reproducible.
MAX_EXAMPLES = 50
# The event stream never ends. Schemathesis reads an event stream until it has this many
# events or the request timeout passes, then closes it and checks what it got: the current
# value is sent first, so a VPS with data answers at once and one without data times out.
STREAM_EVENTS = 1
STREAM_TIMEOUT_SECONDS = 0.5
STREAM_MAX_EXAMPLES = 15

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)

# Random values are rarely meaningful here, so generation draws from these too (schema-valid
# ones in positive cases, schema-invalid ones in negative cases).
INT32_EDGES = [0, -1, 2**31 - 1, 2**31, 2**63, 10**20]
HOSTILE_STRINGS = ["\x00", "a\x00b", " ", "ALICE", "root ", "é", "\U0001d11e", "' OR '1'='1", "%00"]
INTERVALS = ["auto", "1m", "5m", "15m", "1h", "6h", "1d", "7d", "1w", "0m", "8d", "90s"]


def _config(admin_token: str, vps_ids: list[int]) -> schemathesis.Config:
    now = int(time.time())
    times = [
        str(now - 3600),
        str(now - 600),
        str(now + 60),
        "2000-01-01T00:00:00Z",
        "1970-01-01T00:00:00+00:00",
        "2100-01-01T00:00:00-05:00",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59Z",
        "253402300799",
    ]
    return schemathesis.Config.from_dict(
        {
            "generation": {
                "mode": "all",  # valid and invalid inputs
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                "dictionaries": {"string": {"dictionary": "hostile", "probability": 0.2}},
            },
            "dictionaries": {
                # Repeated so that most draws are a VPS that exists.
                "vps_ids": {"values": [*vps_ids * 3, *INT32_EDGES]},
                "times": {"values": times},
                "intervals": {"values": INTERVALS},
                "hostile": {"values": HOSTILE_STRINGS},
            },
            "parameters": {
                # Random integers are almost never a VPS: most cases use one that is.
                "path.vps_id": {"dictionary": "vps_ids", "probability": 0.7},
                "query.start_time": {"dictionary": "times", "probability": 0.5},
                "query.end_time": {"dictionary": "times", "probability": 0.5},
                "query.interval": {"dictionary": "intervals", "probability": 0.5},
                "body.username": {"dictionary": "hostile", "probability": 0.5},
            },
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            # The admin sees every VPS. Negative cases also leave the credentials out (401).
            "auth": {"openapi": {"bearer": {"bearer": admin_token}}},
            "request-timeout": 10,
            "operations": [
                {
                    "include-path": "/api/vps/{vps_id}/metrics/stream",
                    "max-stream-events": STREAM_EVENTS,
                    "request-timeout": STREAM_TIMEOUT_SECONDS,
                    "generation": {"max-examples": STREAM_MAX_EXAMPLES},
                }
            ],
        }
    )


@pytest.fixture(scope="module")
async def fleet_with_data(fleet: Fleet) -> Fleet:
    """web-1 has three minutes of snapshots, db-1 one, web-2 none (its latest is a 404)."""
    now = time.time_ns() // 1_000_000
    await fleet.ingest("web-1", [snapshot(now - 180_000 + i * 5_000) for i in range(37)])
    await fleet.ingest("db-1", [snapshot(now)])
    return fleet


@pytest.fixture(scope="module")
def api_schema(fleet_with_data: Fleet) -> schemathesis.BaseSchema:
    fleet = fleet_with_data
    config = _config(fleet.tokens["root"], sorted(fleet.vps.values()))
    return schemathesis.openapi.from_url(f"{fleet.base_url}/api/openapi.json", config=config)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """Schemathesis 4.32's `from_fixture` reads and writes `node._nodeid`, which pytest 9.2
    no longer has (the id is computed from `node._id`): give it one to work with."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@pytest.mark.slow
def test_served_document_holds_for_generated_requests(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate()

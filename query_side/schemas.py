"""HTTP I/O models: request validation and the documented response shapes."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from query_side.errors import bad_parameter
from vpsmon.metrics import METRICS


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class LoginResponse(BaseModel):
    username: str
    is_admin: bool


class Health(BaseModel):
    status: str
    backend: str
    versions: dict[str, str | None]
    latest_cache: str


class LatestMetrics(BaseModel):
    vps_id: int
    time: datetime
    cpu_usage_percent: float
    memory_usage_bytes: int
    memory_total_bytes: int
    disk_io_read_bps: int
    disk_io_write_bps: int
    network_rx_bps: int
    network_tx_bps: int


class VpsSummary(BaseModel):
    id: int
    name: str
    created_at: datetime
    online: bool
    last_seen: datetime | None
    latest: LatestMetrics | None


def _point_model() -> type[BaseModel]:
    fields: dict[str, tuple[type, object]] = {"time": (datetime, ...), "samples": (int, ...)}
    for metric in METRICS:
        kind: type = float if metric == "cpu_usage_percent" else int
        fields[f"{metric}_avg"] = (float, ...)
        fields[f"{metric}_min"] = (kind, ...)
        fields[f"{metric}_max"] = (kind, ...)
    from pydantic import create_model

    return create_model("TimeseriesPoint", **fields)  # type: ignore[call-overload,no-any-return]


TimeseriesPoint = _point_model()


class TimeseriesResponse(BaseModel):
    vps_id: int
    interval: str
    source: str
    start_time: datetime
    end_time: datetime
    points: list[TimeseriesPoint]  # type: ignore[valid-type]


# Unix seconds beyond this are certainly a mistake (year 9999).
_MAX_UNIX = 253_402_300_799


def parse_time(name: str, text: str) -> datetime:
    """RFC 3339 or Unix seconds, always returned in UTC."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not 0 <= seconds <= _MAX_UNIX:
            raise bad_parameter(f"{name}: Unix time {text!r} is out of range")
        return datetime.fromtimestamp(seconds, UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise bad_parameter(
            f"{name}: {text[:64]!r} is neither RFC 3339 (e.g. 2026-01-31T12:00:00Z) "
            "nor Unix seconds"
        ) from None
    if moment.tzinfo is None:
        raise bad_parameter(f"{name}: {text[:64]!r} has no time zone offset")
    return moment.astimezone(UTC)

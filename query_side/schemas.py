"""HTTP I/O models: request validation and the documented response shapes."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from vpsmon import constants
from vpsmon.errors import InvalidInputError
from vpsmon.metrics import METRICS


class LoginRequest(BaseModel):
    # The same names `vpsmon user add` allows.
    username: str = Field(
        min_length=1,
        max_length=constants.USERNAME_MAX_CHARS,
        pattern=f"^[{constants.USERNAME_CHARACTERS}]+$",
    )
    password: str = Field(min_length=1, max_length=constants.PASSWORD_MAX_CHARS)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class LoginResponse(BaseModel):
    username: str
    is_admin: bool


class PublicHealth(BaseModel):
    """What an anonymous caller learns: ok or degraded, nothing more."""

    status: str


class Health(BaseModel):
    """What a signed-in caller learns."""

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


# Times outside these bounds are mistakes, and near datetime's own limits
# bucket arithmetic would overflow.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def parse_time(name: str, text: str) -> datetime:
    """RFC 3339 or Unix seconds, always returned in UTC."""
    text = text.strip()
    out_of_range = InvalidInputError(f"{name}: {text[:64]!r} is not between 1970 and 2200")
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not _EARLIEST.timestamp() <= seconds < _LATEST.timestamp():
            raise out_of_range
        return datetime.fromtimestamp(seconds, UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInputError(
            f"{name}: {text[:64]!r} is neither RFC 3339 (e.g. 2026-01-31T12:00:00Z) "
            "nor Unix seconds"
        ) from None
    if moment.tzinfo is None:
        raise InvalidInputError(f"{name}: {text[:64]!r} has no time zone offset")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise out_of_range from None
    if not _EARLIEST <= moment < _LATEST:
        raise out_of_range
    return moment

"""Server settings, read from ``VPSMON_*`` environment variables.

The retention defaults keep raw 1 s samples for two weeks and each coarser
rollup for longer, so that a dashboard can show a year at 5 minutes and five
years at an hour while the raw table stays a bounded size.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BeforeValidator, Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from proto.options import MAX_MESSAGE_BYTES
from vpsmon import constants
from vpsmon.durations import parse_duration


def _duration(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


def _networks(value: object) -> object:
    """``"10.0.0.1, 192.168.0.0/16 ::1"`` (commas or spaces) into networks; a clear error
    for anything that is not an address or a CIDR network."""
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        return value
    networks = []
    for item in items:
        if isinstance(item, IPv4Network | IPv6Network):
            networks.append(item)
            continue
        try:
            networks.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            raise ValueError(f"{str(item)[:64]!r} is not an IP address or CIDR network") from None
    return tuple(networks)


# Addresses whose X-Forwarded-For and X-Forwarded-Proto are believed.
Networks = Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode, BeforeValidator(_networks)]

BackendChoice = Literal["auto", "postgresql", "timescaledb"]


class RetentionSettings(BaseSettings):
    """How long each resolution is kept (``VPSMON_RETENTION_RAW`` etc.)."""

    model_config = SettingsConfigDict(
        env_prefix="VPSMON_RETENTION_", frozen=True, populate_by_name=True
    )

    raw: Duration = timedelta(days=14)
    rollup_1m: Duration = Field(
        default=timedelta(days=90),
        validation_alias=AliasChoices("rollup_1m", "vpsmon_retention_1m"),
    )
    rollup_5m: Duration = Field(
        default=timedelta(days=365),
        validation_alias=AliasChoices("rollup_5m", "vpsmon_retention_5m"),
    )
    rollup_1h: Duration = Field(
        default=timedelta(days=5 * 365),
        validation_alias=AliasChoices("rollup_1h", "vpsmon_retention_1h"),
    )

    @model_validator(mode="after")
    def _coarser_kept_longer(self) -> RetentionSettings:
        periods = [self.raw, self.rollup_1m, self.rollup_5m, self.rollup_1h]
        if periods != sorted(periods):
            raise ValueError(
                "retention periods must not shrink with coarser resolution: raw <= 1m <= 5m <= 1h"
            )
        if self.raw < timedelta(hours=6):
            # The refresh window must stay inside raw retention and still span
            # two 1h buckets beyond the 1h rollup's end offset.
            raise ValueError("raw retention must be at least 6h")
        return self

    @property
    def refresh_window(self) -> timedelta:
        """How far back a refresh re-materializes late rows: inside raw retention, by a margin."""
        return self.raw - max(timedelta(minutes=30), self.raw / 10)


class Settings(BaseSettings):
    """Process-wide settings; every field maps to ``VPSMON_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="VPSMON_", frozen=True)

    database_url: str | None = None
    backend: BackendChoice = "auto"
    grpc_listen: str = constants.DEFAULT_GRPC_ADDRESS
    # PEM files; set both and the command side serves TLS, set one alone and it
    # refuses to start (never a silent fall-back to plaintext).
    grpc_tls_cert: str | None = None
    grpc_tls_key: str | None = None
    http_listen: str = constants.DEFAULT_HTTP_ADDRESS
    # Reverse proxies in front of the query side (addresses or CIDRs, comma-separated):
    # only from them are X-Forwarded-For and X-Forwarded-Proto believed. Default: none.
    trusted_proxies: Networks = ()
    compress_after: Duration = timedelta(days=2)
    timescale_chunk_interval: Duration = timedelta(days=1)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    # Ingest limits; a batch over the maximum is rejected whole.
    max_batch_snapshots: int = Field(
        default=1000, ge=constants.BATCH_SIZE_MIN, le=constants.BATCH_SIZE_MAX
    )
    # A stream must send its handshake this soon; at most this many may be waiting.
    grpc_handshake_timeout: Duration = timedelta(seconds=5)
    grpc_max_unauthenticated_streams: int = Field(default=1000, ge=1)
    # All streams one command side serves at once (beyond: RESOURCE_EXHAUSTED).
    grpc_max_streams: int = Field(default=10_000, ge=1)
    # Each VPS may send this many times its sampling rate (spool replay after an
    # outage), with bursts of 30 s of that; see command_side/budget.py.
    ingest_budget_headroom: float = Field(default=50.0, gt=0)
    # Bytes of one VPS's batches being validated and committed at once.
    ingest_max_in_flight_bytes: int = Field(default=2 * MAX_MESSAGE_BYTES, ge=MAX_MESSAGE_BYTES)
    # The AgentConfig agents get unless `vpsmon vps config` overrides it.
    agent_collect_interval: int = Field(
        default=constants.DEFAULT_COLLECT_INTERVAL_S,
        ge=constants.COLLECT_INTERVAL_MIN_S,
        le=constants.COLLECT_INTERVAL_MAX_S,
    )
    agent_upload_interval: int = Field(
        default=constants.DEFAULT_UPLOAD_INTERVAL_S,
        ge=constants.UPLOAD_INTERVAL_MIN_S,
        le=constants.UPLOAD_INTERVAL_MAX_S,
    )
    agent_upload_batch_max: int = Field(
        default=constants.DEFAULT_BATCH_SIZE,
        ge=constants.BATCH_SIZE_MIN,
        le=constants.BATCH_SIZE_MAX,
    )
    # Group commit: batches from all streams share a transaction, up to this
    # many rows or this long after the first one arrived.
    ingest_group_max_rows: int = Field(default=20_000, ge=1)
    ingest_group_linger_ms: float = Field(default=2.0, ge=0, le=1000)
    # How often the plain-PostgreSQL rollup projection refreshes.
    rollup_refresh_interval: Duration = timedelta(seconds=30)

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        cert, key = self.grpc_tls_cert, self.grpc_tls_key
        if bool(cert) != bool(key):
            given, missing = ("CERT", "KEY") if cert else ("KEY", "CERT")
            raise ValueError(
                f"VPSMON_GRPC_TLS_{given} is set but VPSMON_GRPC_TLS_{missing} is not:"
                " set both to serve TLS, or neither for plaintext"
            )
        for name, path in (("CERT", cert), ("KEY", key)):
            if path and not Path(path).is_file():
                raise ValueError(f"VPSMON_GRPC_TLS_{name}: {path} is not a readable file")
        return self

    @model_validator(mode="after")
    def _agent_batches_fit(self) -> Settings:
        if self.agent_upload_batch_max > self.max_batch_snapshots:
            raise ValueError("VPSMON_AGENT_UPLOAD_BATCH_MAX exceeds VPSMON_MAX_BATCH_SNAPSHOTS")
        return self

"""Server settings, read from ``VPSMON_*`` environment variables.

The retention defaults keep raw 1 s samples for two weeks and each coarser
rollup for longer, so that a dashboard can show a year at 5 minutes and five
years at an hour while the raw table stays a bounded size.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AliasChoices, BeforeValidator, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vpsmon.durations import parse_duration


def _duration(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(_duration)]

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
    grpc_listen: str = "127.0.0.1:50051"
    http_listen: str = "127.0.0.1:8000"
    compress_after: Duration = timedelta(days=2)
    timescale_chunk_interval: Duration = timedelta(days=1)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

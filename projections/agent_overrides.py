"""What the `vps_agent_config` projection means: per-VPS overrides of the
server's default AgentConfig, each NULL where the default applies.

The command side sends agents the result, the query side judges from it
whether a VPS is still reporting; both resolve an override here.
"""

from __future__ import annotations

from dataclasses import dataclass

from vpsmon.settings import Settings


@dataclass(frozen=True)
class EffectiveAgentConfig:
    """The sampling and upload settings one VPS's agent runs with."""

    collect_interval_s: int
    upload_interval_s: int
    upload_batch_max: int


def effective_agent_config(
    settings: Settings,
    *,
    collect_interval_s: int | None = None,
    upload_interval_s: int | None = None,
    upload_batch_max: int | None = None,
) -> EffectiveAgentConfig:
    """The overrides given, the server's defaults for the rest. A batch never exceeds
    what the server accepts whole (VPSMON_MAX_BATCH_SNAPSHOTS)."""
    batch_max = upload_batch_max or settings.agent_upload_batch_max
    return EffectiveAgentConfig(
        collect_interval_s=collect_interval_s or settings.agent_collect_interval,
        upload_interval_s=upload_interval_s or settings.agent_upload_interval,
        upload_batch_max=min(batch_max, settings.max_batch_snapshots),
    )

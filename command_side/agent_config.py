"""The AgentConfig each agent runs with: the server defaults, overridden per VPS."""

from __future__ import annotations

from projections.agent_overrides import effective_agent_config
from proto.vpsmon.v1 import agent_pb2
from vpsmon.settings import Settings
from vpsmon.storage.types import Queryable


async def agent_config_for(
    conn: Queryable, vps_id: int, settings: Settings
) -> agent_pb2.AgentConfig:
    row = await conn.fetchrow(
        "SELECT collect_interval_seconds, upload_interval_seconds, upload_batch_max_size"
        " FROM vps_agent_config WHERE vps_id = $1",
        vps_id,
    )
    config = effective_agent_config(
        settings,
        collect_interval_s=None if row is None else row["collect_interval_seconds"],
        upload_interval_s=None if row is None else row["upload_interval_seconds"],
        upload_batch_max=None if row is None else row["upload_batch_max_size"],
    )
    return agent_pb2.AgentConfig(
        metrics_collect_interval_seconds=config.collect_interval_s,
        metrics_upload_batch_max_size=config.upload_batch_max,
        metrics_upload_interval_seconds=config.upload_interval_s,
    )

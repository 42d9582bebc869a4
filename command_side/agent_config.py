"""The AgentConfig each agent runs with: the server defaults, overridden per VPS."""

from __future__ import annotations

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
    override = dict(row) if row is not None else {}
    batch_max = override.get("upload_batch_max_size") or settings.agent_upload_batch_max
    return agent_pb2.AgentConfig(
        metrics_collect_interval_seconds=override.get("collect_interval_seconds")
        or settings.agent_collect_interval,
        # Never ask for batches the server would reject whole.
        metrics_upload_batch_max_size=min(batch_max, settings.max_batch_snapshots),
        metrics_upload_interval_seconds=override.get("upload_interval_seconds")
        or settings.agent_upload_interval,
    )

-- The query side decides whether a VPS is online from the intervals its agent
-- really runs with: the per-VPS overrides of `vpsmon vps config` as well as
-- the server's defaults. The table holds no secret.
GRANT SELECT ON vps_agent_config TO vpsmon_query;

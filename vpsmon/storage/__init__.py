"""Storage backends: external PostgreSQL/TimescaleDB or the embedded default."""

"""Read models built from the event logs: the VPS registry, latest values and rollups."""

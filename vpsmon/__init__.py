"""vpsmon: self-hosted monitoring for fleets of VPS hosts."""

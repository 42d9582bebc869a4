"""The write side: agent authentication, validation and append-only ingest."""

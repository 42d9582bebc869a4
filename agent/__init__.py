"""The host agent: collector, batcher, durable spool and gRPC client."""

"""How a stream ends: the one table from vpsmon's errors to gRPC status codes.

The service raises (or ends a stream with) a vpsmon.errors class; this module
alone decides which status the agent sees. Agents act on the code (docs/WIRE_PROTOCOL.md:
a bad token is UNAUTHENTICATED, a message before the handshake
FAILED_PRECONDITION), so the table is part of the wire contract.
"""

from __future__ import annotations

import grpc

from proto.options import RETRY_AFTER_FIELD
from vpsmon.errors import (
    AuthenticationError,
    HandshakeTimeoutError,
    OverloadedError,
    ProtocolError,
    ServiceStoppingError,
    StorageUnavailableError,
    StreamError,
    StreamReplacedError,
    UnknownVpsError,
    VpsmonError,
)

# Error class -> status code; the most specific class of an error wins.
GRPC_STATUS: dict[type[VpsmonError], grpc.StatusCode] = {
    AuthenticationError: grpc.StatusCode.UNAUTHENTICATED,
    UnknownVpsError: grpc.StatusCode.UNAUTHENTICATED,  # the VPS was removed meanwhile
    ProtocolError: grpc.StatusCode.FAILED_PRECONDITION,
    HandshakeTimeoutError: grpc.StatusCode.DEADLINE_EXCEEDED,
    OverloadedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    StreamReplacedError: grpc.StatusCode.ABORTED,
    ServiceStoppingError: grpc.StatusCode.UNAVAILABLE,
    StorageUnavailableError: grpc.StatusCode.UNAVAILABLE,
    StreamError: grpc.StatusCode.UNAVAILABLE,
}


def grpc_status(error: VpsmonError) -> tuple[grpc.StatusCode, str]:
    """The status code and details a stream ends with for ``error`` (INTERNAL if unmapped).

    An OverloadedError's details end with ``retry-after-s=<seconds>``, which the
    agent obeys before it reconnects.
    """
    details = str(error)
    if isinstance(error, OverloadedError) and error.retry_after_s is not None:
        details = f"{details}; {RETRY_AFTER_FIELD}{error.retry_after_s:.1f}"
    for cls in type(error).__mro__:
        code = GRPC_STATUS.get(cls)
        if code is not None:
            return code, details
    return grpc.StatusCode.INTERNAL, details

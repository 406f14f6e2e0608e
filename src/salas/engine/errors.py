"""The Engine.IO HTTP error answers, with the codes and messages of the reference server."""

from __future__ import annotations

from enum import IntEnum

import orjson

__all__ = ["EngineErrorCode", "error_body"]


class EngineErrorCode(IntEnum):
    UNKNOWN_TRANSPORT = 0
    UNKNOWN_SID = 1
    BAD_HANDSHAKE_METHOD = 2
    BAD_REQUEST = 3
    FORBIDDEN = 4
    UNSUPPORTED_PROTOCOL_VERSION = 5


_MESSAGES = {
    EngineErrorCode.UNKNOWN_TRANSPORT: "Transport unknown",
    EngineErrorCode.UNKNOWN_SID: "Session ID unknown",
    EngineErrorCode.BAD_HANDSHAKE_METHOD: "Bad handshake method",
    EngineErrorCode.BAD_REQUEST: "Bad request",
    EngineErrorCode.FORBIDDEN: "Forbidden",
    EngineErrorCode.UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}


def error_body(code: EngineErrorCode, message: str | None = None) -> tuple[int, bytes]:
    """HTTP status and JSON body for an Engine.IO error code (`message` replaces the
    standard one, as the reference server does for a refusal with a reason)."""
    status = 403 if code is EngineErrorCode.FORBIDDEN else 400
    return status, orjson.dumps({"code": int(code), "message": message or _MESSAGES[code]})

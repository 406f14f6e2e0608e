"""Exceptions of the public API."""

from __future__ import annotations

from typing import Any

__all__ = ["AckTimeout", "ConnectionRefused", "Disconnected"]


class ConnectionRefused(Exception):
    """Raise from a middleware to refuse a connection.

    The client receives CONNECT_ERROR `{"message": message, "data": data}` (its
    `connect_error` event).
    """

    def __init__(self, message: str = "Connection refused", data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"message": self.message}
        if self.data is not None:
            payload["data"] = self.data
        return payload


class AckTimeout(TimeoutError):
    """The client did not acknowledge an emit within its timeout."""


class Disconnected(ConnectionError):
    """The socket disconnected while an acknowledgement was awaited."""

"""Exceptions of the public API."""

from __future__ import annotations

from typing import Any

__all__ = ["AckTimeout", "ConnectionRefused", "Disconnected"]


class ConnectionRefused(Exception):
    """Raise from a middleware to refuse a connection.

    The client receives CONNECT_ERROR ``{"message": message, "data": data}`` (its
    ``connect_error`` event; ``data`` is left out when it is None).

    Args:
        message: What the client is told (default ``"Connection refused"``).
        data: Extra JSON-serialisable detail for the client, or None.
    """

    def __init__(self, message: str = "Connection refused", data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_payload(self) -> dict[str, Any]:
        """The CONNECT_ERROR packet's payload: ``message``, and ``data`` unless it is None."""
        payload: dict[str, Any] = {"message": self.message}
        if self.data is not None:
            payload["data"] = self.data
        return payload


class AckTimeout(TimeoutError):
    """The client did not acknowledge an emit within its timeout.

    Raised by :meth:`Socket.emit_with_ack`; a :class:`TimeoutError`.
    """


class Disconnected(ConnectionError):
    """The socket is not connected, or disconnected while an acknowledgement was awaited.

    Raised by :meth:`Socket.emit_with_ack`; a :class:`ConnectionError`.
    """

"""Exceptions of the public API (salas.server.errors)."""

from __future__ import annotations

from salas import AckTimeout, ConnectionRefused, Disconnected


def test_connection_refused_payload() -> None:
    """ConnectionRefused carries the CONNECT_ERROR payload: message, and data when given."""
    assert ConnectionRefused().to_payload() == {"message": "Connection refused"}
    refused = ConnectionRefused("no", {"retry": False})
    assert refused.to_payload() == {"message": "no", "data": {"retry": False}}
    assert str(refused) == "no"
    assert ConnectionRefused("zero", 0).to_payload() == {"message": "zero", "data": 0}


def test_exception_hierarchy() -> None:
    """AckTimeout is a TimeoutError and Disconnected a ConnectionError, for generic handling."""
    assert issubclass(AckTimeout, TimeoutError)
    assert issubclass(Disconnected, ConnectionError)
    assert issubclass(ConnectionRefused, Exception)

"""The one exception the sans-I/O codecs raise for malformed input."""

__all__ = ["ProtocolError"]


class ProtocolError(ValueError):
    """Input that does not follow the Engine.IO / Socket.IO wire format.

    The engine closes only the offending session when it sees one of these.
    """

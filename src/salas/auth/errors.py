"""`AuthError`: a token or its claims refused, with a short reason a client may be told."""

from __future__ import annotations

__all__ = ["AuthError"]


class AuthError(Exception):
    """A token that cannot be accepted.

    Args:
        reason: A few words a client may be shown as they are (``"expired"``,
            ``"bad signature"``, ``"wrong audience"``, ``"missing sub"``, ``"malformed"``...);
            never the token, a key or a library's internal message.

    Attributes:
        reason: The same words.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

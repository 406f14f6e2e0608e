"""Open connections counted in total and per client address, with the answer to a refusal.

A connection is counted when it is accepted and released when it closes, websockets
included. At accept the only address known is the peer's; a peer that is a trusted proxy
(`forwarded_allow_ips`) counts in the total only, and each of its requests is attributed to
the client its `X-Forwarded-For` names once the request's head is in (`reattribute`).
"""

from __future__ import annotations

from http import HTTPStatus

__all__ = ["ConnectionLimits"]


class ConnectionLimits:
    """Counts of open connections; `max_total` / `max_per_address` of 0 mean no limit."""

    __slots__ = (
        "_per_address",
        "max_per_address",
        "max_total",
        "refused_address",
        "refused_full",
        "total",
    )

    def __init__(self, max_total: int, max_per_address: int) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.total = 0
        self._per_address: dict[str, int] = {}
        # Refusals since the start, for metrics: the server full (503), an address at its
        # limit (429, at accept or once a proxy names the client).
        self.refused_full = 0
        self.refused_address = 0

    def count(self, address: str) -> int:
        """Open connections attributed to `address`."""
        return self._per_address.get(address, 0)

    def acquire(self, address: str | None) -> int | None:
        """Count a new connection from `address` (None: a trusted proxy, total only).

        Returns:
            None when admitted (and counted), else the HTTP status to refuse it with:
            503 when the server is full, 429 when the address has too many.
        """
        if self.max_total and self.total >= self.max_total:
            self.refused_full += 1
            return HTTPStatus.SERVICE_UNAVAILABLE
        if address is not None and not self._add(address):
            self.refused_address += 1
            return HTTPStatus.TOO_MANY_REQUESTS
        self.total += 1
        return None

    def release(self, address: str | None) -> None:
        """Forget a connection counted by `acquire(address)`."""
        self.total -= 1
        if address is not None:
            self._remove(address)

    def reattribute(self, old: str | None, new: str) -> bool:
        """Move a counted connection from `old` to `new`; False (nothing moved) if `new` is
        at its limit."""
        if old == new:
            return True
        if not self._add(new):
            self.refused_address += 1
            return False
        if old is not None:
            self._remove(old)
        return True

    def _add(self, address: str) -> bool:
        count = self._per_address.get(address, 0)
        if self.max_per_address and count >= self.max_per_address:
            return False
        self._per_address[address] = count + 1
        return True

    def _remove(self, address: str) -> None:
        count = self._per_address.get(address, 0) - 1
        if count > 0:
            self._per_address[address] = count
        else:
            self._per_address.pop(address, None)

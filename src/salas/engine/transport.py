"""What the engine needs from the server carrying it: a connection that answers requests, and
a websocket that carries a session.

salas' own HTTP/1.1 server (`salas.engine.http`, `salas.engine.websocket`) is one carrier;
an ASGI server (`salas.engine.asgi`) is another. Sessions, handshakes, upgrades and every
check of the engine are written once, against these two protocols.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from salas.engine.http import HttpRequest
    from salas.engine.stats import EngineStats

__all__ = ["CloseCallback", "Connection", "EngineSocket", "MessageCallback"]

MessageCallback = Callable[[str | bytes], None]
CloseCallback = Callable[[str], None]


class EngineSocket(Protocol):
    """A websocket carrying (or being probed for) one Engine.IO session.

    What the session writes are *chunks*: with `framed` true, complete websocket frames
    (bytes built once per broadcast, written as they are); otherwise Engine.IO packets
    (`str` for text, `bytes` for binary) that the carrier sends as messages.
    """

    on_message: MessageCallback
    on_close: CloseCallback

    @property
    def framed(self) -> bool:
        """Whether chunks are pre-built websocket frames (else Engine.IO packets)."""
        ...

    @property
    def congested(self) -> bool:
        """Whether unsent data is above the carrier's high-water mark."""
        ...

    def start(self) -> None:
        """Deliver what arrived with the handshake, once the callbacks are in place."""

    def write(self, chunk: Any) -> None:
        """Send one chunk."""

    def writelines(self, chunks: list[Any]) -> None:
        """Send chunks, in order."""

    def buffered(self) -> int:
        """Bytes written but not yet sent on."""
        ...

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close after what was written has gone out."""

    def abort(self) -> None:
        """Drop the connection now, discarding what is unsent."""


class Connection(Protocol):
    """What carries one HTTP request and answers it (`HttpRequest.respond` writes here)."""

    peer_address: str
    # The address the connection limits count it under, and whether they counted it.
    counted_as: str | None
    admitted: bool

    @property
    def gone(self) -> bool:
        """Whether the client has left (or the connection is closing): nothing can be sent."""
        ...

    def write_response(
        self,
        request: HttpRequest,
        status: int,
        body: bytes,
        headers: list[tuple[str, str]],
        content_type: str,
    ) -> None:
        """Send the response to `request`."""

    def close(self) -> None:
        """Close the connection once what was written has gone out."""

    def accept_websocket(
        self, request: HttpRequest, max_size: int, high_water: int, stats: EngineStats
    ) -> EngineSocket | None:
        """Answer an upgrade request; the websocket, or None (refused, connection closed).
        `stats`: the engine's counters, where the websocket counts the bytes it reads."""
        ...

"""Observers: being told of connections, sockets and room changes, for tools that watch.

A :class:`ServerObserver` added with :meth:`Server.add_observer
<salas.server.server.Server.add_observer>` is told when an Engine.IO connection opens or
closes, when a socket connects to or disconnects from a namespace, when a socket joins or
leaves a room, and when a namespace is made. The admin dashboard (:mod:`salas.admin`) is one.

Nothing is observed until an observer is added: the server then checks one empty container at
each connection, disconnection and room change, and never on the broadcast path. Observers
run synchronously, inside the operation they are told of: they must be quick, must not
block, and must not change rooms themselves. What one raises is logged and goes no further.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from salas.engine import EngineSession
    from salas.server.namespace import Namespace
    from salas.server.socket import Socket

__all__ = ["ServerObserver", "ServerObservers"]

logger = logging.getLogger("salas.server")


class ServerObserver:
    """What a server tells its observers; subclass it and override what you need.

    Every method does nothing by default. ``nsp`` arguments are namespace names.
    """

    def namespace_created(self, nsp: Namespace) -> None:
        """A namespace was made (by ``io.of``), after the observer was added."""

    def connection_opened(self, session: EngineSession) -> None:
        """An Engine.IO connection opened (no namespace joined yet)."""

    def connection_closed(self, session: EngineSession, reason: str) -> None:
        """An Engine.IO connection closed, after its sockets were told."""

    def socket_connected(self, socket: Socket) -> None:
        """``socket`` connected to its namespace: in its rooms, before ``connection`` handlers."""

    def socket_disconnected(self, socket: Socket, reason: str) -> None:
        """``socket`` disconnected (already out of its rooms), after its handlers were called."""

    def room_joined(self, nsp: str, room: str, sid: str) -> None:
        """Socket ``sid`` of namespace ``nsp`` joined ``room`` (its own-id room too)."""

    def room_left(self, nsp: str, room: str, sid: str) -> None:
        """Socket ``sid`` of namespace ``nsp`` left ``room`` (also when it disconnects)."""


class ServerObservers(ServerObserver):
    """A server's observers (``io.observers``): tells each in turn; false while empty.

    The server checks ``if io.observers:`` before building anything to tell, so a server
    nobody watches pays one truth test per connection, disconnection and room change.
    """

    def __init__(self) -> None:
        self._observers: tuple[ServerObserver, ...] = ()

    def __bool__(self) -> bool:
        return bool(self._observers)

    def __len__(self) -> int:
        return len(self._observers)

    def add(self, observer: ServerObserver) -> None:
        """Tell ``observer`` too, from now on."""
        self._observers = (*self._observers, observer)

    def remove(self, observer: ServerObserver) -> None:
        """Stop telling ``observer``; nothing happens if it was not added."""
        self._observers = tuple(o for o in self._observers if o is not observer)

    def namespace_created(self, nsp: Namespace) -> None:
        """Tell every observer; see :meth:`ServerObserver.namespace_created`."""
        for observer in self._observers:
            try:
                observer.namespace_created(nsp)
            except Exception:
                logger.exception("error in observer %r", observer)

    def connection_opened(self, session: EngineSession) -> None:
        """Tell every observer; see :meth:`ServerObserver.connection_opened`."""
        for observer in self._observers:
            try:
                observer.connection_opened(session)
            except Exception:
                logger.exception("error in observer %r", observer)

    def connection_closed(self, session: EngineSession, reason: str) -> None:
        """Tell every observer; see :meth:`ServerObserver.connection_closed`."""
        for observer in self._observers:
            try:
                observer.connection_closed(session, reason)
            except Exception:
                logger.exception("error in observer %r", observer)

    def socket_connected(self, socket: Socket) -> None:
        """Tell every observer; see :meth:`ServerObserver.socket_connected`."""
        for observer in self._observers:
            try:
                observer.socket_connected(socket)
            except Exception:
                logger.exception("error in observer %r", observer)

    def socket_disconnected(self, socket: Socket, reason: str) -> None:
        """Tell every observer; see :meth:`ServerObserver.socket_disconnected`."""
        for observer in self._observers:
            try:
                observer.socket_disconnected(socket, reason)
            except Exception:
                logger.exception("error in observer %r", observer)

    def room_joined(self, nsp: str, room: str, sid: str) -> None:
        """Tell every observer; see :meth:`ServerObserver.room_joined`."""
        for observer in self._observers:
            try:
                observer.room_joined(nsp, room, sid)
            except Exception:
                logger.exception("error in observer %r", observer)

    def room_left(self, nsp: str, room: str, sid: str) -> None:
        """Tell every observer; see :meth:`ServerObserver.room_left`."""
        for observer in self._observers:
            try:
                observer.room_left(nsp, room, sid)
            except Exception:
                logger.exception("error in observer %r", observer)

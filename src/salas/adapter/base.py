"""What an adapter is: who is in which room, and how a broadcast reaches them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from salas.protocol.outgoing import EncodedMessage

__all__ = [
    "Adapter",
    "AdapterFactory",
    "BroadcastOptions",
    "Member",
    "MemberRegistry",
    "MembershipObserver",
    "OffsetLog",
    "RemoteSocket",
]


class Transport(Protocol):
    """What an adapter needs of a socket's connection: a way to queue an encoded message."""

    def send_encoded(self, message: EncodedMessage, volatile: bool = False) -> bool:
        """Queue ``message``; False if it was dropped (volatile and congested, or closed)."""
        ...


class Member(Protocol):
    """What an adapter needs of a connected socket (salas.server.Socket is one)."""

    @property
    def id(self) -> str:
        """The socket id (also a room of its own)."""
        ...

    @property
    def session(self) -> Transport:
        """The connection a broadcast is queued on."""
        ...

    @property
    def offsets(self) -> int:
        """Its offset mode: which form of a recovery broadcast it gets (``for_mode``)."""
        ...

    async def disconnect(self, close: bool = False) -> None:
        """Disconnect the socket from its namespace; with ``close``, its whole connection."""
        ...


@dataclass(frozen=True, slots=True)
class RemoteSocket:
    """A socket connected to another process, as a cluster adapter's ``fetch_sockets`` sees it.

    A snapshot taken when that process answered; it has no methods.

    Attributes:
        id: The socket id.
        rooms: The rooms it was in, its own id among them.
        data: Its ``data``, or None when that was not JSON-serialisable.
    """

    id: str
    rooms: frozenset[str]
    data: Any


class MemberRegistry(Protocol):
    """What an adapter needs of its namespace: the local sockets by id, and its name."""

    @property
    def name(self) -> str:
        """The namespace's name, such as ``"/"``."""
        ...

    @property
    def sockets(self) -> Mapping[str, Member]:
        """The namespace's sockets connected to this process, by id."""
        ...

    @property
    def offset_modes(self) -> Sequence[int]:
        """How many of ``sockets`` are in each offset mode, indexed by mode."""
        ...


class MembershipObserver(Protocol):
    """Told of room changes by an adapter that supports it (``MemoryAdapter.membership_observer``).

    Called synchronously inside the change, for this process's sockets only.
    """

    def room_joined(self, nsp: str, room: str, sid: str) -> None:
        """Socket ``sid`` of namespace ``nsp`` is now in ``room`` (it was not before)."""
        ...

    def room_left(self, nsp: str, room: str, sid: str) -> None:
        """Socket ``sid`` of namespace ``nsp`` is no longer in ``room``."""
        ...


class OffsetLog(Protocol):
    """Connection state recovery as a cluster adapter that numbers broadcasts sees it.

    A namespace offers one as ``offset_log`` (None without recovery). The adapter numbers
    the namespace's recovery broadcasts cluster-wide (:mod:`salas.cluster.offsets`) and
    tells it of each, in offset order, before delivering it to this process's sockets.
    """

    @property
    def head(self) -> int:
        """The highest offset this process has handed out or seen."""
        ...

    def sequenced(
        self, nsp: str, message: EncodedMessage, offset: int, opts: BroadcastOptions, own: bool
    ) -> None:
        """A broadcast of namespace ``nsp`` got ``offset`` (``message`` carries it) and is
        about to be delivered here; ``own``: this process made it (and logs it)."""
        ...


class BroadcastOptions(NamedTuple):
    """Which sockets a broadcast or a bulk operation is for, and how it is sent.

    A named tuple rather than a frozen dataclass: one is built for every ``io.to(room)``,
    and tuples are several times cheaper to create.

    Attributes:
        rooms: Recipients are the sockets in any of these rooms; empty: every socket of
            the namespace.
        except_rooms: Sockets in any of these rooms are left out.
        volatile: Drop the packet, rather than queue it, for congested connections.
        local: This process's sockets only, even with a cluster adapter.
    """

    rooms: frozenset[str] = frozenset()
    except_rooms: frozenset[str] = frozenset()
    volatile: bool = False
    local: bool = False  # this process only, even with a cluster adapter


class Adapter(Protocol):
    """One namespace's rooms, and how its broadcasts and bulk operations reach sockets.

    The server makes one per namespace with the :class:`AdapterFactory` given as
    ``Server(adapter=...)`` (default :class:`~salas.adapter.MemoryAdapter`).
    ``Server.start`` runs ``init`` for the namespaces that exist by then; a namespace made
    later by ``io.of(...)`` runs it in the background as it is made, and its broadcasts and
    bulk operations wait for it. ``Server.shutdown`` runs ``close`` for every namespace
    (also one whose ``init`` never ran or did not finish, so ``close`` must allow that).
    The membership methods are synchronous and concern this process's sockets only; the
    operations taking :class:`BroadcastOptions` reach every process's sockets unless
    ``opts.local`` is set.

    Attributes:
        nsp: The namespace whose rooms it keeps.
    """

    nsp: MemberRegistry

    async def init(self) -> None:
        """Start: connect to whatever the adapter shares rooms through."""
        ...

    async def close(self) -> None:
        """Stop, and release what ``init`` acquired."""
        ...

    def add_all(self, sid: str, rooms: Iterable[str]) -> None:
        """Put socket ``sid`` in each of ``rooms`` (those it is already in stay as they are)."""
        ...

    def remove(self, sid: str, room: str) -> None:
        """Take socket ``sid`` out of ``room``; nothing happens if it is not in it."""
        ...

    def remove_all(self, sid: str) -> None:
        """Take socket ``sid`` out of every room (it is going away)."""
        ...

    def socket_rooms(self, sid: str) -> set[str]:
        """A copy of the rooms socket ``sid`` is in (empty for an unknown socket)."""
        ...

    def room_members(self, room: str) -> set[str]:
        """A copy of the ids of this process's sockets in ``room`` (empty if none)."""
        ...

    async def broadcast(self, message: EncodedMessage, opts: BroadcastOptions) -> None:
        """Deliver ``message`` (encoded once by the caller) to every socket matching ``opts``."""
        ...

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Member | RemoteSocket]:
        """The sockets matching ``opts``: local ones as members, others as RemoteSocket."""
        ...

    async def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        """Put every socket matching ``opts`` in ``rooms``."""
        ...

    async def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        """Take every socket matching ``opts`` out of ``rooms``."""
        ...

    async def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        """Disconnect every socket matching ``opts``; with ``close``, their connections."""
        ...


class AdapterFactory(Protocol):
    """What ``Server(adapter=...)`` takes: makes a namespace's adapter."""

    def __call__(self, nsp: MemberRegistry) -> Adapter:
        """The adapter of namespace ``nsp``, not yet started (``init`` not run)."""
        ...

"""What an adapter is: who is in which room, and how a broadcast reaches them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from salas.protocol.outgoing import EncodedMessage

__all__ = [
    "Adapter",
    "AdapterFactory",
    "BroadcastOptions",
    "Member",
    "MemberRegistry",
    "RemoteSocket",
]


class Transport(Protocol):
    def send_encoded(self, message: EncodedMessage, volatile: bool = False) -> bool: ...


class Member(Protocol):
    """What an adapter needs of a connected socket (salas.server.Socket is one)."""

    @property
    def id(self) -> str: ...
    @property
    def session(self) -> Transport: ...
    async def disconnect(self, close: bool = False) -> None: ...


@dataclass(frozen=True, slots=True)
class RemoteSocket:
    """A socket connected to another process (cluster adapters' fetch_sockets)."""

    id: str
    rooms: frozenset[str]
    data: Any


class MemberRegistry(Protocol):
    """What an adapter needs of its namespace: the local sockets by id, and its name."""

    @property
    def name(self) -> str: ...
    @property
    def sockets(self) -> Mapping[str, Member]: ...


class BroadcastOptions(NamedTuple):
    """Recipients: sockets in any of `rooms` (all sockets if empty), minus any in `except_rooms`.

    A named tuple rather than a frozen dataclass: one is built for every `io.to(room)`, and
    tuples are several times cheaper to create.
    """

    rooms: frozenset[str] = frozenset()
    except_rooms: frozenset[str] = frozenset()
    volatile: bool = False
    local: bool = False  # this process only, even with a cluster adapter


class Adapter(Protocol):
    nsp: MemberRegistry

    async def init(self) -> None: ...
    async def close(self) -> None: ...

    def add_all(self, sid: str, rooms: Iterable[str]) -> None: ...
    def remove(self, sid: str, room: str) -> None: ...
    def remove_all(self, sid: str) -> None: ...
    def socket_rooms(self, sid: str) -> set[str]: ...
    def room_members(self, room: str) -> set[str]: ...

    async def broadcast(self, message: EncodedMessage, opts: BroadcastOptions) -> None:
        """Deliver `message` (encoded once by the caller) to every socket matching `opts`."""
        ...

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Member | RemoteSocket]: ...
    async def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None: ...
    async def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None: ...
    async def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None: ...


class AdapterFactory(Protocol):
    def __call__(self, nsp: MemberRegistry) -> Adapter: ...

"""`RedisPresence`: the chat's presence shared by every node of a cluster.

Each node keeps, in memory, the presence of the whole cluster — its own sockets and a
replica of the others' — so that every read the chat makes (members, counts, the rooms
list, names) stays synchronous and local. Its own sockets it changes itself; each change
is written to Redis as the socket's whole record (name, user, rooms and names shown:
``<prefix>:sockets:<node>``, one hash per node) in one MULTI with a message on the cluster
channel, which the other nodes apply to their replica. A record replaces what a replica
knew of the socket, so applying one twice, or a stale one followed by the newer, ends in the
same state. A node starting (or reconnecting after Redis was away) subscribes, then reads
every live node's hash.

Announcements stay with the node where they happen: the node whose socket joined, left or
was renamed sends the `presence` event (through the Redis adapter it reaches every node's
members once). A node that dies without a word: the node that claims its cleanup
(`ClusterNode`) removes its sockets, tells the others, and announces the departures once
(`on_departed`).

What is not guaranteed: names are unique in a room as far as this node's replica knows;
two users taking the same name in one room on two nodes within the time a record takes to
cross Redis (milliseconds) can both show it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from salas.chat.presence import Departure, LocalPresence, Rename
from salas.cluster.node import ClusterNode, Write, text

__all__ = ["RedisPresence"]

logger = logging.getLogger("salas.cluster")

_RECORD = "presence"  # the cluster message kind of a socket's record


class RedisPresence(LocalPresence):
    """`PresenceBackend` of a cluster: the whole cluster's members, kept on every node.

    Args:
        node: This process's node (started by the caller before the chat takes sockets).

    Attributes:
        on_departed: Called with the departures of a dead node's sockets, on the node that
            cleans it up (the chat announces them).
        on_changed: Called after another node's sockets changed the replica (the chat
            refreshes its rooms list).
    """

    def __init__(self, node: ClusterNode) -> None:
        super().__init__()
        self.node = node
        self._local: set[str] = set()
        self._owners: dict[str, str] = {}  # sid of another node's socket -> that node
        self.on_departed: Callable[[list[Departure]], None] | None = None
        self.on_changed: Callable[[], None] | None = None
        node.on_message[_RECORD] = self._on_record
        node.on_dead = self._on_dead
        node.on_reconnect = self._resync

    @property
    def connections(self) -> int:
        """How many sockets are connected to this node."""
        return len(self._local)

    def is_local(self, sid: str) -> bool:
        """Whether the socket is connected to this node (not another node's)."""
        return sid in self._local

    # -- this node's sockets: applied, then published --------------------------------------
    def connect(self, sid: str, name: str, user_id: str | None = None) -> None:
        """As `LocalPresence.connect`, published."""
        super().connect(sid, name, user_id)
        self._local.add(sid)
        self._publish(sid)

    def disconnect(self, sid: str) -> list[Departure]:
        """As `LocalPresence.disconnect`, published (once: the socket is gone)."""
        local = sid in self._local
        self._local.discard(sid)  # (first: its rooms' leaves inside are not published)
        departures = super().disconnect(sid)
        if local:
            self._publish(sid)
        else:
            self._owners.pop(sid, None)
        return departures

    def join(self, sid: str, room: str, prefer: str | None = None) -> tuple[str, bool]:
        """As `LocalPresence.join`, published."""
        result = super().join(sid, room, prefer)
        self._publish(sid)
        return result

    def leave(self, sid: str, room: str) -> str | None:
        """As `LocalPresence.leave`, published for this node's sockets (another node's
        socket, evicted here, is published by its own node)."""
        shown = super().leave(sid, room)
        if shown is not None:
            self._publish(sid)
        return shown

    def rename(self, sid: str, new: str) -> list[Rename]:
        """As `LocalPresence.rename`, published."""
        renames = super().rename(sid, new)
        self._publish(sid)
        return renames

    def _record(self, sid: str) -> dict[str, Any] | None:
        if not self.is_connected(sid):
            return None
        return {
            "name": self.name(sid),
            "user": self.user_id(sid),
            "rooms": [[room, self.shown_as(sid, room)] for room in self.rooms_of(sid)],
        }

    def _publish(self, sid: str) -> None:
        if sid not in self._local and (self.is_connected(sid) or sid in self._owners):
            return  # another node's socket (or one going away): its node publishes it
        record = self._record(sid)
        key = self.node.key("sockets", self.node.node_id)
        message = {"sid": sid, "record": record}
        if record is None:
            self.node.write(Write({**message, "kind": _RECORD}, hdel=(key, sid)))
        else:
            self.node.write(
                Write({**message, "kind": _RECORD}, hset=(key, sid, orjson.dumps(record)))
            )

    # -- other nodes' sockets --------------------------------------------------------------
    def _on_record(self, node: str, message: dict[str, Any]) -> None:
        sid = message.get("sid")
        if not isinstance(sid, str) or sid in self._local:
            return
        self._apply(node, sid, message.get("record"))
        if self.on_changed is not None:
            self.on_changed()

    def _apply(self, node: str, sid: str, record: Any) -> list[Departure]:
        """Make the replica's view of another node's socket `record` (None: gone)."""
        departures = super().disconnect(sid) if self.is_connected(sid) else []
        self._owners.pop(sid, None)
        if not isinstance(record, dict):
            return departures
        name, user = record.get("name"), record.get("user")
        if not isinstance(name, str) or not isinstance(user, str):
            return departures
        super().connect(sid, name, user)
        self._owners[sid] = node
        for entry in record.get("rooms") or ():
            if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str):
                shown = entry[1] if isinstance(entry[1], str) else None
                super().join(sid, entry[0], prefer=shown)
        return departures

    async def _on_dead(self, node: str) -> None:
        """Remove a dead node's sockets everywhere and announce who left, once."""
        redis = self.node.redis
        key = self.node.key("sockets", node)
        sids = [sid for sid, owner in self._owners.items() if owner == node]
        sids += [text(raw) for raw in await redis.hkeys(key)]  # (any this replica missed)
        departures: list[Departure] = []
        for sid in dict.fromkeys(sids):
            departures += self._apply(node, sid, None)
            self.node.write(Write({"kind": _RECORD, "sid": sid, "record": None}))
        await redis.delete(key)
        if departures and self.on_departed is not None:
            self.on_departed(departures)
        if self.on_changed is not None:
            self.on_changed()

    async def _resync(self) -> None:
        """(Re)subscribed: write this node's records again, and reload the others'."""
        redis = self.node.redis
        own = self.node.key("sockets", self.node.node_id)
        pipe = redis.pipeline(transaction=True)
        pipe.delete(own)
        for sid in self._local:
            record = self._record(sid)
            if record is not None:
                pipe.hset(own, sid, orjson.dumps(record))
        await pipe.execute()
        alive = [n for n in await self.node.nodes() if n != self.node.node_id]
        seen: set[str] = set()
        for node in alive:
            records = await redis.hgetall(self.node.key("sockets", node))
            for raw_sid, raw in records.items():
                sid = text(raw_sid)
                seen.add(sid)
                try:
                    record = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                self._apply(node, sid, record)
        # Sockets of other nodes that ended while this node was not listening.
        for sid in [s for s in self._owners if s not in seen]:
            self._apply(self._owners[sid], sid, None)
        for sid in list(self._local):
            # Tell the others this node's sockets again: they may have reaped them.
            record = self._record(sid)
            if record is not None:
                self.node.write(Write({"kind": _RECORD, "sid": sid, "record": record}))
        if self.on_changed is not None:
            self.on_changed()

"""Connection state recovery, as the official client (>= 4.6) expects it: the policy, and
the one object (:class:`Recovery`) through which the server reaches it.

With recovery on, the CONNECT reply carries `{sid, pid}`, and every event broadcast through
the adapter carries its offset as a last, extra argument (the client remembers the last one
it saw). When a transport drops, the socket's session is saved; a client reconnecting with
`{pid, offset}` in its CONNECT gets the same socket id, rooms and `data` back, then every
logged broadcast after `offset` meant for its rooms, and `socket.recovered` is True.

Reading the log takes time (a database query); broadcasts made meanwhile are in neither the
answer nor the socket's rooms yet. So each restore in progress also collects what is
logged while it runs (`_Watch`), and the replay is the union of both, by offset, computed
when the socket joins its rooms (synchronously, so nothing falls between the two).

The server calls :class:`Recovery` at five points and nowhere else: ``on_broadcast``
(stamp, encode and log a broadcast: once per broadcast, never per recipient),
``new_session`` (a socket connects afresh), ``on_disconnect`` (a socket goes away),
``restore`` then ``replay`` or ``abandon`` (a client comes back), and ``start``/``close``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from salas.adapter.base import BroadcastOptions
from salas.db.common import now_ms
from salas.protocol import SocketPacket
from salas.protocol.outgoing import EncodedMessage

from .memory import MemoryRecoveryStore
from .types import LoggedPacket, RecoveryStore, SessionRecord

__all__ = ["MAX_REPLAY", "RECOVERABLE_REASONS", "Recovery", "RecoveryOptions", "RestoredSession"]

logger = logging.getLogger("salas.recovery")

# Disconnections the client did not ask for: only these leave a session to recover.
RECOVERABLE_REASONS = frozenset(
    {"transport error", "transport close", "forced close", "ping timeout", "server shutting down"}
)
# Packets replayed to one recovering socket at most; beyond that it starts afresh.
MAX_REPLAY = 10_000
_OFFSET = re.compile(r"\d{1,19}")


@dataclass(frozen=True, slots=True)
class RecoveryOptions:
    """`Server(connection_state_recovery=RecoveryOptions(...))`.

    `max_disconnection_duration`: seconds a disconnected session waits for its client;
    `skip_middlewares`: a recovered socket does not go through `use` again; `store`: where
    the broadcast log and sessions are kept (`open_recovery_store(url)`; default: memory).
    """

    max_disconnection_duration: float = 120.0  # seconds a session waits for its client
    skip_middlewares: bool = True  # a recovered socket does not go through `use` again
    store: RecoveryStore = field(default_factory=MemoryRecoveryStore)


class _Watch:
    """Broadcasts logged while a restore is in progress."""

    __slots__ = ("packets",)

    def __init__(self) -> None:
        self.packets: list[LoggedPacket] = []


@dataclass(frozen=True, slots=True)
class RestoredSession:
    """A session taken back for a reconnecting client, and what it missed so far."""

    record: SessionRecord
    offset: int  # the client's last offset: everything after it is replayed
    logged: list[LoggedPacket]  # read from the log, for the session's rooms
    watch: _Watch = field(default_factory=_Watch, repr=False)


class Recovery:
    """Connection state recovery of one server: offsets, the log, saved sessions."""

    def __init__(self, options: RecoveryOptions) -> None:
        self.options = options
        self.store = options.store
        self._next_offset = 1
        self._pending: set[asyncio.Task[None]] = set()
        self._pruner: asyncio.Task[None] | None = None
        self._watches: set[_Watch] = set()

    async def start(self) -> None:
        """Open the store and continue the offsets after the last one it logged."""
        await self.store.open()
        self._next_offset = await self.store.last_offset() + 1
        self._pruner = asyncio.get_running_loop().create_task(self._prune_forever())

    async def close(self) -> None:
        """Wait for pending session saves, make the log durable, close the store."""
        if self._pruner is not None:
            self._pruner.cancel()
            self._pruner = None
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self.store.flush()
        await self.store.close()

    @property
    def head(self) -> int:
        """The offset of the latest broadcast."""
        return self._next_offset - 1

    # -- broadcasting -----------------------------------------------------------------
    def on_broadcast(
        self, nsp: str, packet: SocketPacket, opts: BroadcastOptions
    ) -> EncodedMessage:
        """`packet` encoded for the broadcast `opts` describes; unless it is volatile, with
        its offset as a last, extra argument (the official client keeps the latest one it
        saw and hands it back when it reconnects), and logged under that offset."""
        if opts.volatile:
            return EncodedMessage.of_socket_packet(packet)
        offset = self._next_offset
        self._next_offset += 1
        packet.data.append(str(offset))
        message = EncodedMessage.of_socket_packet(packet)
        logged = LoggedPacket(
            offset,
            nsp,
            tuple(sorted(opts.rooms)),
            tuple(sorted(opts.except_rooms)),
            tuple(message.packets),
        )
        self.store.append(logged)
        if self._watches:
            for watch in self._watches:
                watch.packets.append(logged)
        return message

    # -- connect and disconnect -------------------------------------------------------
    def new_session(self) -> tuple[str, int]:
        """`(pid, base_offset)` of a socket connecting afresh: the private id its client
        presents to recover it, and the log head, where its replay would start."""
        return secrets.token_urlsafe(15), self.head

    def on_disconnect(
        self,
        reason: str,
        *,
        pid: str,
        sid: str,
        nsp: str,
        rooms: Iterable[str],
        data: Any,
        base_offset: int,
    ) -> None:
        """A socket is going away (still in its `rooms`): save its session in the
        background when `reason` is one its client did not ask for."""
        if reason in RECOVERABLE_REASONS:
            self._save(SessionRecord(pid, sid, nsp, tuple(rooms), data, base_offset))

    # -- reconnect --------------------------------------------------------------------
    @property
    def skip_middlewares(self) -> bool:
        """Whether a recovered socket skips the namespace's middlewares."""
        return self.options.skip_middlewares

    def _save(self, record: SessionRecord) -> None:
        task = asyncio.get_running_loop().create_task(self._store_session(record))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _store_session(self, record: SessionRecord) -> None:
        try:
            await self.store.save_session(record)
        except Exception:
            logger.exception("could not save session of socket %s for recovery", record.sid)

    async def restore(self, nsp: str, auth: dict[str, Any]) -> RestoredSession | None:
        """The session a reconnecting client asks for, or None to connect it afresh.

        Unless it is None, pass the result to `replay` (when the socket joins its rooms)
        or to `abandon`: until then it collects what is broadcast."""
        pid = auth.get("pid")
        if not isinstance(pid, str) or not pid:
            return None
        watch = _Watch()
        self._watches.add(watch)
        try:
            restored = await self._restore(nsp, auth, pid, watch)
        except BaseException:
            self._watches.discard(watch)
            raise
        if restored is None:
            self._watches.discard(watch)
        return restored

    async def _restore(
        self, nsp: str, auth: dict[str, Any], pid: str, watch: _Watch
    ) -> RestoredSession | None:
        try:
            record = await self.store.take_session(pid)
        except Exception:
            logger.exception("could not look up session %r for recovery", pid)
            return None
        if record is None or record.nsp != nsp:
            return None
        age = now_ms() - record.disconnected_at
        if age > self.options.max_disconnection_duration * 1000:
            return None
        raw_offset = auth.get("offset")
        if isinstance(raw_offset, str) and _OFFSET.fullmatch(raw_offset):
            offset = int(raw_offset)
        else:
            offset = record.base_offset  # the client never received a broadcast
        try:
            packets = await self.store.packets_after(nsp, offset, MAX_REPLAY + 1)
        except Exception:
            logger.exception("could not read the recovery log; connecting %s afresh", record.sid)
            return None
        if len(packets) > MAX_REPLAY:
            logger.info("session %s missed too much to replay; connecting afresh", record.sid)
            return None
        rooms = frozenset(record.rooms)
        return RestoredSession(record, offset, [p for p in packets if p.reaches(rooms)], watch)

    def replay(self, restored: RestoredSession) -> list[EncodedMessage]:
        """What the recovered socket missed, oldest first: the log read by `restore` and
        what was broadcast since. Call it when the socket joins its rooms, without awaiting
        in between: from then on broadcasts reach it directly."""
        self._watches.discard(restored.watch)
        rooms = frozenset(restored.record.rooms)
        missed = {p.offset: p for p in restored.logged}
        for packet in restored.watch.packets:
            if packet.offset > restored.offset and packet.reaches(rooms):
                missed.setdefault(packet.offset, packet)
        return [EncodedMessage(list(missed[o].packets)) for o in sorted(missed)]

    def abandon(self, restored: RestoredSession, resave: bool = False) -> None:
        """The restored session will not be used; with `resave`, keep it for another try
        (its client went away before it could be given back)."""
        self._watches.discard(restored.watch)
        if resave:
            self._save(restored.record)

    async def _prune_forever(self) -> None:
        window_ms = int(self.options.max_disconnection_duration * 1000)
        while True:
            await asyncio.sleep(min(60.0, max(1.0, self.options.max_disconnection_duration / 2)))
            try:
                # A margin beyond the window: packets a socket had not yet received when it
                # dropped stay until its session has expired.
                await self.store.prune(now_ms() - 2 * window_ms - 60_000)
            except Exception:
                logger.exception("could not prune the recovery log")

"""Connection state recovery, as the official client (>= 4.6) expects it: the policy, and
the one object (:class:`Recovery`) through which the server reaches it.

With recovery on, the CONNECT reply carries `{sid, pid}`, and every event broadcast through
the adapter carries its offset as a last, extra argument (the client remembers the last one
it saw) for the sockets that read it. Which sockets do is decided when each connects
(:func:`offset_mode`): the mode it names in its CONNECT auth (``"offsets"``: ``"none"``,
``"trailing"`` or ``"tagged"``, the last for :mod:`salas.client`), else trailing offsets
(Node's form, which the official JS client reads) unless its Engine.IO handshake was built by
python-engineio, whose handlers take exactly the event's arguments. Nothing in the protocol
tells the two apart otherwise: both send a CONNECT auth object on their first connect.

When a transport drops, the socket's session is saved; a client reconnecting with
`{pid, offset}` in its CONNECT gets the same socket id, rooms and `data` back, then every
logged broadcast after `offset` meant for its rooms, and `socket.recovered` is True.

Reading the log takes time (a database query); broadcasts made meanwhile are in neither the
answer nor the socket's rooms yet. So each restore in progress also collects what is
logged while it runs (`_Watch`), and the replay is the union of both, by offset, computed
when the socket joins its rooms (synchronously, so nothing falls between the two).

The server calls :class:`Recovery` at six points and nowhere else: ``on_broadcast``
(stamp, encode and log a broadcast: once per broadcast, never per recipient),
``new_session`` (a socket connects afresh), ``track`` (a socket is connected),
``on_disconnect`` (a socket goes away), ``restore`` then ``replay`` or ``abandon`` (a
client comes back), and ``start``/``close``.

Across processes (a cluster adapter and a store shared by every process, such as
PostgreSQL): the adapter numbers broadcasts cluster-wide and calls ``sequenced`` for each,
in offset order, in every process (:mod:`salas.cluster.offsets`); only the process that made
a broadcast logs it. A process that reads the shared log may find there the broadcasts of
another process not yet written (they are written in batches), or never written (it was
killed): so each process also keeps the latest broadcasts it read from the channel
(:data:`RECENT`) and a restore takes the union of both; the offsets of a namespace being
consecutive, a hole in that union means a packet is lost, and the client is connected afresh
rather than given a replay with a hole. A process killed with -9 saves no session at
disconnect: with a shared store, live sessions are written through (``track``: within
:data:`WRITE_THROUGH_INTERVAL` of a room change, and every quarter of
``max_disconnection_duration``), so a client of a dead process recovers on another.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import secrets
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from salas.adapter.base import BroadcastOptions
from salas.db.common import now_ms
from salas.protocol import SocketPacket
from salas.protocol.outgoing import (
    OFFSETS_NONE,
    OFFSETS_TAGGED,
    OFFSETS_TRAILING,
    EncodedMessage,
)

from .memory import MemoryRecoveryStore
from .types import LoggedPacket, RecoveryStore, SessionRecord

__all__ = [
    "MAX_REPLAY",
    "OFFSET_MODE_NAMES",
    "RECENT",
    "RECOVERABLE_REASONS",
    "RESTART_GAP",
    "WRITE_THROUGH_INTERVAL",
    "LiveSocket",
    "Recovery",
    "RecoveryOptions",
    "RestoredSession",
    "offset_mode",
]

logger = logging.getLogger("salas.recovery")

# Disconnections the client did not ask for: only these leave a session to recover.
RECOVERABLE_REASONS = frozenset(
    {"transport error", "transport close", "forced close", "ping timeout", "server shutting down"}
)
# Packets replayed to one recovering socket at most; beyond that it starts afresh.
MAX_REPLAY = 10_000
#: Broadcasts read from a cluster adapter's channel that each process keeps in memory: what
#: another process logged but had not yet written when a restore reads the shared log.
RECENT = 10_000
#: Seconds between two write-throughs of the live sessions whose rooms changed.
WRITE_THROUGH_INTERVAL = 1.0
#: How far above the last offset in a durable log a run numbers its first broadcast. A run
#: killed (SIGKILL, power cut) may have numbered and sent broadcasts its log writer had not
#: yet written — at most its queue's bound, 100,000, and a batch — and clients hold those
#: offsets: numbering them again would make a recovering client skip the new broadcasts as
#: seen. Offsets are 64-bit: a million per start is nothing.
RESTART_GAP = 1_000_000
_OFFSET = re.compile(r"\d{1,19}")
#: What a client may put under ``"offsets"`` in its CONNECT auth, and the mode each means.
OFFSET_MODE_NAMES = {
    "none": OFFSETS_NONE,
    "trailing": OFFSETS_TRAILING,
    "tagged": OFFSETS_TAGGED,
}
# python-engineio's clients (python-socketio's) build their URL as `...transport=X&EIO=4`;
# the official JS client (engine.io-client) as `EIO=4&transport=X`.
_PYTHON_ENGINEIO = re.compile(r"(?:^|&)transport=[a-z]+&EIO=")


def offset_mode(auth: Any, query_string: str) -> int:
    """The offset mode of a socket connecting with CONNECT payload ``auth``.

    In order: the mode the client names under ``"offsets"`` in its auth (:data:`OFFSET_MODE_NAMES`);
    trailing offsets for a client presenting a ``pid`` (it is recovering, so it reads
    them); trailing offsets for a CONNECT without a payload (python-socketio always sends
    one: the official JS client without an ``auth`` option); no offsets for a client whose
    Engine.IO handshake was built by python-engineio (``query_string``), whose handlers take
    exactly the arguments an event has; trailing offsets, as Node's server sends them, to
    every other client.

    Args:
        auth: The CONNECT packet's payload, None when it had none.
        query_string: The query string of the Engine.IO handshake request.

    Returns:
        One of :data:`~salas.protocol.outgoing.OFFSETS_NONE`, ``OFFSETS_TRAILING``,
        ``OFFSETS_TAGGED``.
    """
    if isinstance(auth, dict):
        named = auth.get("offsets")
        if isinstance(named, str) and named in OFFSET_MODE_NAMES:
            return OFFSET_MODE_NAMES[named]
        if "pid" in auth:
            return OFFSETS_TRAILING
        if _PYTHON_ENGINEIO.search(query_string):
            return OFFSETS_NONE
    return OFFSETS_TRAILING


@dataclass(frozen=True, slots=True)
class RecoveryOptions:
    """Connection state recovery's settings: ``Server(connection_state_recovery=...)``.

    Attributes:
        max_disconnection_duration: Seconds a disconnected session waits for its client
            (default 120.0); the log keeps packets about twice as long.
        skip_middlewares: Whether a recovered socket skips the namespace's middlewares
            (``use``) (default True).
        store: Where the broadcast log and sessions are kept, e.g.
            ``open_recovery_store(url)`` (default: a new :class:`MemoryRecoveryStore`).
    """

    max_disconnection_duration: float = 120.0  # seconds a session waits for its client
    skip_middlewares: bool = True  # a recovered socket does not go through `use` again
    store: RecoveryStore = field(default_factory=MemoryRecoveryStore)


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class LiveSocket(Protocol):
    """What :meth:`Recovery.track` reads of a connected socket (``salas.Socket`` is one)."""

    @property
    def id(self) -> str:
        """The socket id."""
        ...

    @property
    def nsp(self) -> _Named:
        """Its namespace."""
        ...

    @property
    def rooms(self) -> set[str]:
        """The rooms it is in."""
        ...

    @property
    def data(self) -> Any:
        """Its ``data``."""
        ...

    @property
    def base_offset(self) -> int:
        """The log head when it connected."""
        ...


@dataclass(slots=True)
class _Tracked:
    """A live socket written through to a shared store: what was saved, and when."""

    socket: LiveSocket
    rooms: tuple[str, ...] | None = None  # as last saved; None: never saved
    saved_at: int = 0  # ms


class _Watch:
    """Broadcasts logged while a restore is in progress."""

    __slots__ = ("packets",)

    def __init__(self) -> None:
        self.packets: list[LoggedPacket] = []


@dataclass(frozen=True, slots=True)
class RestoredSession:
    """A session taken back for a reconnecting client, and what it missed so far.

    Attributes:
        record: The saved session.
        offset: The client's last offset: everything after it is replayed.
        logged: The packets read from the log after ``offset``, for the session's rooms.
    """

    record: SessionRecord
    offset: int  # the client's last offset: everything after it is replayed
    logged: list[LoggedPacket]  # read from the log, for the session's rooms
    watch: _Watch = field(default_factory=_Watch, repr=False)


class Recovery:
    """Connection state recovery of one server: offsets, the log, saved sessions.

    The server makes one when ``connection_state_recovery`` is set, and is its only user.

    Args:
        options: The settings.

    Attributes:
        options: As given.
        store: ``options.store``.
        attempts: Reconnecting clients that presented a session id to recover.
        recovered: Those that got their session back (their missed packets replayed).
    """

    def __init__(self, options: RecoveryOptions) -> None:
        self.options = options
        self.store = options.store
        self._next_offset = 1
        self._first_own_offset = 1  # the least offset this run numbers itself
        self._pending: set[asyncio.Task[None]] = set()
        self._pruner: asyncio.Task[None] | None = None
        self._watches: set[_Watch] = set()
        # A store every process of a cluster shares (a database): each logs only its own
        # broadcasts there, and live sessions are written through.
        self._shared = bool(getattr(self.store, "shared", False))
        self._recent: collections.deque[LoggedPacket] = collections.deque(maxlen=RECENT)
        self._cluster_nsps: set[str] = set()  # namespaces numbered by a cluster adapter
        self._live: dict[str, _Tracked] = {}  # by pid
        self._writer: asyncio.Task[None] | None = None
        self.attempts = 0
        self.recovered = 0

    async def start(self) -> None:
        """Open the store, continue the offsets after the last one it logged, start pruning.

        With a store that outlives the process (``shared``: a database), the broadcasts
        this run numbers itself start :data:`RESTART_GAP` above that offset.

        Raises:
            StoreError: The store cannot be opened or read.
        """
        await self.store.open()
        last = await self.store.last_offset()
        self._next_offset = last + 1
        self._first_own_offset = last + 1 + (RESTART_GAP if self._shared else 0)
        self._pruner = asyncio.get_running_loop().create_task(self._prune_forever())
        if self._shared:
            self._writer = asyncio.get_running_loop().create_task(self._write_through_forever())

    async def close(self) -> None:
        """Wait for pending session saves, make the log durable, close the store."""
        if self._pruner is not None:
            self._pruner.cancel()
            self._pruner = None
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None
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
        """Encode a broadcast's packet, stamped with its offset and logged, once.

        Unless the broadcast is volatile, the next offset is added to ``packet``'s data as a
        last, extra argument (the official client keeps the latest one it saw and hands it
        back when it reconnects) and the encoded packet is logged under it. That is the
        form most recipients get; those in another offset mode get the other form, derived
        once (:meth:`EncodedMessage.for_mode`).

        Args:
            nsp: The namespace's name.
            packet: The EVENT packet; its data is changed in place.
            opts: The broadcast's recipients.

        Returns:
            The encoded message to hand to every recipient.
        """
        if opts.volatile:
            return EncodedMessage.of_broadcast(packet, "")
        offset = self._next_offset
        if offset < self._first_own_offset:
            offset = self._first_own_offset
        self._next_offset = offset + 1
        stamp = str(offset)
        packet.data.append(stamp)
        message = EncodedMessage.of_broadcast(packet, stamp)
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

    def sequenced(
        self, nsp: str, message: EncodedMessage, offset: int, opts: BroadcastOptions, own: bool
    ) -> None:
        """A broadcast numbered cluster-wide, read back from the cluster adapter's channel.

        Called in offset order, before the broadcast is delivered to this process's
        sockets. Logged when this process made it (``own``), or by every process when the
        store is not shared; kept among the :data:`RECENT` ones; seen by restores in
        progress.

        Args:
            nsp: The namespace's name.
            message: The broadcast, its offset appended.
            offset: Its offset, above every one sequenced before in ``nsp``.
            opts: Its recipients.
            own: Whether this process made it.
        """
        logged = LoggedPacket(
            offset,
            nsp,
            tuple(sorted(opts.rooms)),
            tuple(sorted(opts.except_rooms)),
            tuple(message.packets),
        )
        if own or not self._shared:
            self.store.append(logged)
        self._cluster_nsps.add(nsp)
        if offset >= self._next_offset:
            self._next_offset = offset + 1
        self._recent.append(logged)
        if self._watches:
            for watch in self._watches:
                watch.packets.append(logged)

    # -- connect and disconnect -------------------------------------------------------
    def new_session(self) -> tuple[str, int]:
        """A private id and base offset for a socket connecting afresh.

        Returns:
            ``(pid, base_offset)``: the private id its client presents to recover it,
            and the log head, where its replay would start.
        """
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
        """Save a departing socket's session in the background, if it may come back.

        Saved only when ``reason`` is one of :data:`RECOVERABLE_REASONS` (the client did
        not ask to disconnect); a failed save is logged, not raised.

        Args:
            reason: Why the socket disconnects.
            pid: Its private id.
            sid: Its socket id.
            nsp: Its namespace's name.
            rooms: The rooms it is still in.
            data: Its ``data``.
            base_offset: The log head when it connected.
        """
        tracked = self._live.pop(pid, None)
        if reason in RECOVERABLE_REASONS:
            self._save(SessionRecord(pid, sid, nsp, tuple(rooms), data, base_offset))
        elif tracked is not None and tracked.rooms is not None:
            self._drop(pid)  # written through: it must not be recovered now

    def track(self, pid: str, socket: LiveSocket) -> None:
        """A socket is connected (afresh or recovered): write its session through.

        Only with a shared store (a process killed with -9 saves nothing at disconnect,
        so its sockets' sessions must already be there): saved within
        :data:`WRITE_THROUGH_INTERVAL` seconds, again within as long of every change of
        its rooms, and every quarter of ``max_disconnection_duration`` (its ``data`` too).
        Nothing is written per packet; many sessions go in one batch.

        Args:
            pid: Its private id.
            socket: The socket.
        """
        if self._shared:
            self._live[pid] = _Tracked(socket)

    def _drop(self, pid: str) -> None:
        self._in_background(self._drop_session(pid))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a store call as a task that `close` waits for."""
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _drop_session(self, pid: str) -> None:
        try:
            await self.store.take_session(pid)
        except Exception:
            logger.exception("could not forget the session %s written through", pid)

    async def _write_through_forever(self) -> None:
        while True:
            await asyncio.sleep(WRITE_THROUGH_INTERVAL)
            await self.write_through()

    async def write_through(self) -> None:
        """Save the tracked sessions that changed, or were last saved long ago, in one batch.

        Run every :data:`WRITE_THROUGH_INTERVAL` seconds with a shared store; a failed save
        is logged and tried again on the next run.
        """
        now = now_ms()
        refresh_ms = self.options.max_disconnection_duration * 250
        due: list[tuple[_Tracked, SessionRecord]] = []
        for pid, tracked in self._live.items():
            socket = tracked.socket
            rooms = tuple(sorted(socket.rooms))
            if rooms != tracked.rooms or now - tracked.saved_at >= refresh_ms:
                data = socket.data
                due.append(
                    (
                        tracked,
                        SessionRecord(
                            pid, socket.id, socket.nsp.name, rooms, data, socket.base_offset, now
                        ),
                    )
                )
                tracked.rooms = rooms
                tracked.saved_at = now
        if not due:
            return
        results = await asyncio.gather(
            *(self.store.save_session(record) for _, record in due), return_exceptions=True
        )
        failed = 0
        for (tracked, _), result in zip(due, results, strict=True):
            if isinstance(result, BaseException):
                failed += 1
                tracked.saved_at = 0  # again next time
        if failed:
            logger.warning("could not write through %d of %d sessions", failed, len(due))

    # -- reconnect --------------------------------------------------------------------
    @property
    def skip_middlewares(self) -> bool:
        """Whether a recovered socket skips the namespace's middlewares."""
        return self.options.skip_middlewares

    def _save(self, record: SessionRecord) -> None:
        self._in_background(self._store_session(record))

    async def _store_session(self, record: SessionRecord) -> None:
        try:
            await self.store.save_session(record)
        except Exception:
            logger.exception("could not save session of socket %s for recovery", record.sid)

    async def restore(self, nsp: str, auth: dict[str, Any]) -> RestoredSession | None:
        """Take back the session a reconnecting client asks for, if it can be recovered.

        Unless it is None, pass the result to :meth:`replay` (when the socket joins its
        rooms) or to :meth:`abandon`: until then it collects what is broadcast. Store
        failures are logged and give None.

        Args:
            nsp: The namespace the client connects to.
            auth: The CONNECT packet's auth, with the client's ``pid`` and ``offset``.

        Returns:
            The restored session, or None to connect the client afresh (no ``pid``, no
            such session, another namespace, older than ``max_disconnection_duration``,
            or more than :data:`MAX_REPLAY` packets missed).
        """
        pid = auth.get("pid")
        if not isinstance(pid, str) or not pid:
            return None
        self.attempts += 1
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
        if nsp in self._cluster_nsps and len(packets) <= MAX_REPLAY:
            complete = self._with_recent(nsp, offset, packets)
            if complete is None:
                logger.warning(
                    "session %s: a broadcast it missed is lost; connecting afresh", record.sid
                )
                return None
            packets = complete
        if len(packets) > MAX_REPLAY:
            logger.info("session %s missed too much to replay; connecting afresh", record.sid)
            return None
        rooms = frozenset(record.rooms)
        return RestoredSession(record, offset, [p for p in packets if p.reaches(rooms)], watch)

    def _with_recent(
        self, nsp: str, offset: int, packets: list[LoggedPacket]
    ) -> list[LoggedPacket] | None:
        """The shared log's packets after ``offset`` and the recent ones read here; None
        when they leave a hole (a namespace's cluster-wide offsets are consecutive)."""
        merged = {p.offset: p for p in packets}
        for packet in self._recent:
            if packet.offset > offset and packet.nsp == nsp:
                merged.setdefault(packet.offset, packet)
        if not merged:
            return []
        first, last = min(merged), max(merged)
        if first != offset + 1 or last - first + 1 != len(merged):
            return None
        return [merged[o] for o in range(first, last + 1)]

    def replay(self, restored: RestoredSession) -> list[EncodedMessage]:
        """What the recovered socket missed, oldest first.

        The log read by :meth:`restore` and what was broadcast since. Call it when the
        socket joins its rooms, without awaiting in between: from then on broadcasts
        reach it directly.

        Args:
            restored: What :meth:`restore` returned.

        Returns:
            The messages to send the socket, in offset order.
        """
        self._watches.discard(restored.watch)
        self.recovered += 1
        rooms = frozenset(restored.record.rooms)
        missed = {p.offset: p for p in restored.logged}
        for packet in restored.watch.packets:
            if packet.offset > restored.offset and packet.reaches(rooms):
                missed.setdefault(packet.offset, packet)
        return [EncodedMessage(list(missed[o].packets)) for o in sorted(missed)]

    def abandon(self, restored: RestoredSession, resave: bool = False) -> None:
        """Give up a restored session that will not be used.

        Args:
            restored: What :meth:`restore` returned.
            resave: Save the session again for another try (its client went away
                before it could be given back) (default False).
        """
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

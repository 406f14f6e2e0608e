"""Who is typing where: throttled broadcasts, and a `typing: false` that comes on its own.

Clients send `typing: true` on (nearly) every keystroke. The tracker turns that into few
broadcasts: at most one per socket and room per `throttle` seconds, whatever its value, so
toggling true/false is throttled like repeating `true`. The first `true` goes out at once; a
change within the interval goes out when the interval ends, if it still holds then (the last
state always arrives); repeats only push the expiry back, and re-broadcast `true` as a
reminder once the interval has passed. After `timeout` seconds without a repeat, `false`
goes out by itself (so a closed laptop does not leave "ana is typing…" on everyone's screen
forever). The server's own stops (the socket sent a message, left, renamed, disconnected)
go out at once: they come with events that are rate-limited themselves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["TypingTracker"]

# on_change(room, sid, user, typing)
OnChange = Callable[[str, str, str, bool], None]


class _Typing:
    __slots__ = ("handle", "last_sent", "pending", "typing", "user")

    def __init__(self, user: str, last_sent: float, handle: asyncio.TimerHandle) -> None:
        self.user = user
        self.last_sent = last_sent  # when the last broadcast went out
        self.handle = handle  # the expiry
        self.typing = True  # the state the client last asked for
        self.pending: asyncio.TimerHandle | None = None  # a change held by the throttle


class TypingTracker:
    """Typing state per (room, socket); calls `on_change` when others should be told."""

    def __init__(
        self,
        on_change: OnChange,
        *,
        timeout: float,
        throttle: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_change = on_change
        self._timeout = timeout
        self._throttle = throttle
        self._clock = clock
        # Sockets shown as typing (the last broadcast said `true`), by (room, sid).
        self._active: dict[tuple[str, str], _Typing] = {}
        self._rooms_by_sid: dict[str, set[str]] = {}

    def update(self, room: str, sid: str, user: str, typing: bool) -> None:
        """The socket (shown as `user` in `room`) says it is typing there, or stopped."""
        key = (room, sid)
        entry = self._active.get(key)
        if entry is None:
            if typing:
                self._start(key, user)
            return
        now = self._clock()
        loop = asyncio.get_running_loop()
        entry.typing = typing
        entry.handle.cancel()
        if typing:
            entry.handle = loop.call_later(self._timeout, self._expire, key)
        if now - entry.last_sent >= self._throttle:
            self._flush(key)
        elif entry.pending is None and not typing:
            # A `false` inside the interval waits for its end (a `true` meanwhile cancels it).
            delay = entry.last_sent + self._throttle - now
            entry.pending = loop.call_later(delay, self._flush, key)

    def _start(self, key: tuple[str, str], user: str) -> None:
        loop = asyncio.get_running_loop()
        handle = loop.call_later(self._timeout, self._expire, key)
        self._active[key] = _Typing(user, self._clock(), handle)
        self._rooms_by_sid.setdefault(key[1], set()).add(key[0])
        self._on_change(key[0], key[1], user, True)

    def _flush(self, key: tuple[str, str]) -> None:
        """The throttle interval is over: broadcast the state the client asked for last."""
        entry = self._active.get(key)
        if entry is None:
            return
        if entry.pending is not None:
            entry.pending.cancel()
            entry.pending = None
        if entry.typing:
            # A periodic reminder, so clients that joined since learn it too.
            entry.last_sent = self._clock()
            self._on_change(key[0], key[1], entry.user, True)
        else:
            self.stop(*key)

    def stop(self, room: str, sid: str) -> bool:
        """The socket stopped typing in `room` (it sent, left, renamed): tell, if it was."""
        entry = self._forget((room, sid))
        if entry is None:
            return False
        self._on_change(room, sid, entry.user, False)
        return True

    def stop_all(self, sid: str) -> list[str]:
        """The socket is going away: stop it typing everywhere; the rooms where it was."""
        rooms = sorted(self._rooms_by_sid.get(sid, ()))
        for room in rooms:
            self.stop(room, sid)
        return rooms

    def is_typing(self, room: str, sid: str) -> bool:
        """Whether the socket is shown as typing in `room` (its last broadcast said so)."""
        return (room, sid) in self._active

    def typists(self, room: str) -> list[str]:
        """Names typing in `room` (for tests and diagnostics)."""
        return sorted(entry.user for (r, _), entry in self._active.items() if r == room)

    def close(self) -> None:
        """Cancel every timer without telling anyone (the server is going down)."""
        for entry in self._active.values():
            entry.handle.cancel()
            if entry.pending is not None:
                entry.pending.cancel()
        self._active.clear()
        self._rooms_by_sid.clear()

    def _expire(self, key: tuple[str, str]) -> None:
        entry = self._forget(key)
        if entry is not None:
            self._on_change(key[0], key[1], entry.user, False)

    def _forget(self, key: tuple[str, str]) -> _Typing | None:
        entry = self._active.pop(key, None)
        if entry is not None:
            entry.handle.cancel()
            if entry.pending is not None:
                entry.pending.cancel()
            rooms = self._rooms_by_sid.get(key[1])
            if rooms is not None:
                rooms.discard(key[0])
                if not rooms:
                    del self._rooms_by_sid[key[1]]
        return entry

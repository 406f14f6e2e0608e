"""Who is typing where: throttled re-broadcasts, and a `typing: false` that comes on its own.

Clients send `typing: true` on (nearly) every keystroke. The tracker turns that into few
broadcasts: the first `true` goes out at once; repeats within `throttle` seconds only push
the expiry back; after `timeout` seconds without a repeat, `false` goes out by itself (so a
closed laptop does not leave "ana is typing…" on everyone's screen forever).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["TypingTracker"]

# on_change(room, sid, user, typing)
OnChange = Callable[[str, str, str, bool], None]


class _Typing:
    __slots__ = ("handle", "last_sent", "user")

    def __init__(self, user: str, last_sent: float, handle: asyncio.TimerHandle) -> None:
        self.user = user
        self.last_sent = last_sent
        self.handle = handle


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
        self._active: dict[tuple[str, str], _Typing] = {}
        self._rooms_by_sid: dict[str, set[str]] = {}

    def update(self, room: str, sid: str, user: str, typing: bool) -> None:
        """The socket (shown as `user` in `room`) says it is typing there, or stopped."""
        if not typing:
            self.stop(room, sid)
            return
        key = (room, sid)
        loop = asyncio.get_running_loop()
        now = self._clock()
        entry = self._active.get(key)
        if entry is None:
            handle = loop.call_later(self._timeout, self._expire, key)
            self._active[key] = _Typing(user, now, handle)
            self._rooms_by_sid.setdefault(sid, set()).add(room)
            self._on_change(room, sid, user, True)
            return
        entry.handle.cancel()
        entry.handle = loop.call_later(self._timeout, self._expire, key)
        if now - entry.last_sent >= self._throttle:
            # A periodic reminder, so clients that joined since learn it too.
            entry.last_sent = now
            self._on_change(room, sid, entry.user, True)

    def stop(self, room: str, sid: str) -> bool:
        """The socket stopped typing in `room` (it sent, left, renamed): tell, if it was."""
        entry = self._forget((room, sid))
        if entry is None:
            return False
        entry.handle.cancel()
        self._on_change(room, sid, entry.user, False)
        return True

    def stop_all(self, sid: str) -> list[str]:
        """The socket is going away: stop it typing everywhere; the rooms where it was."""
        rooms = sorted(self._rooms_by_sid.get(sid, ()))
        for room in rooms:
            self.stop(room, sid)
        return rooms

    def is_typing(self, room: str, sid: str) -> bool:
        return (room, sid) in self._active

    def typists(self, room: str) -> list[str]:
        """Names typing in `room` (for tests and diagnostics)."""
        return sorted(entry.user for (r, _), entry in self._active.items() if r == room)

    def close(self) -> None:
        """Cancel every timer without telling anyone (the server is going down)."""
        for entry in self._active.values():
            entry.handle.cancel()
        self._active.clear()
        self._rooms_by_sid.clear()

    def _expire(self, key: tuple[str, str]) -> None:
        entry = self._forget(key)
        if entry is not None:
            self._on_change(key[0], key[1], entry.user, False)

    def _forget(self, key: tuple[str, str]) -> _Typing | None:
        entry = self._active.pop(key, None)
        if entry is not None:
            rooms = self._rooms_by_sid.get(key[1])
            if rooms is not None:
                rooms.discard(key[0])
                if not rooms:
                    del self._rooms_by_sid[key[1]]
        return entry

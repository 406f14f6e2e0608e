"""`ChatConfig`: how the chat behaves (modes, limits, timings), independent of where it listens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ChatConfig"]


@dataclass(frozen=True, slots=True)
class ChatConfig:
    """Settings of one chat application; every field has a default that runs as documented.

    Timings are in seconds. Tests shorten them (a typing expiry of 50 ms, say) rather than
    sleeping through the production values.
    """

    # Joining a room leaves the previous one (the tutorial's last step); off: stay in all.
    single_room: bool = False
    # None: same-origin only; "*": any origin; or a list of origins.
    cors_origins: str | Sequence[str] | None = None
    # Messages a join's ack carries (the room's latest).
    join_history: int = 50
    # A socket may be in at most this many rooms at once (memory is per membership).
    max_rooms_per_socket: int = 100
    # `typing: false` follows this long after the last `typing: true` of a socket.
    typing_timeout: float = 5.0
    # A socket's repeated `typing: true` is re-broadcast at most this often.
    typing_throttle: float = 2.0
    # At most one `rooms` broadcast per this interval; changes in between are coalesced.
    rooms_interval: float = 0.25
    # The `rooms` list names at most this many rooms (the most populated): it goes to every
    # client, so its size must not grow with the number of rooms.
    rooms_list_max: int = 200
    # `presence` events carry the full member list only up to this many members; above,
    # clients apply joined/left/renamed to the list of the join ack. Otherwise each join to a
    # room of n members would send n names to n clients: n^2 traffic per join wave.
    presence_members_max: int = 100
    # The one event budget per socket (salas.chat.rate_limit): every chat event spends from
    # a token bucket of `message_burst` tokens refilled at `message_rate` per second
    # (message 1, join/leave/history/nick 1, typing 0.2). message_rate 0: no limit, for
    # trusted clients and benchmarks. The burst covers a page reconnecting with 20 open rooms
    # (a join and a history request each).
    message_burst: int = 50
    message_rate: float = 10.0
    # /healthz adds the store's details (backend, file path or schema, error text, counters)
    # to its answer; off, anyone who can reach it learns only whether the server is ok.
    healthz_details: bool = False
    # Refused events in a row after which the connection is closed (0: never).
    event_cutoff: int = 50
    # Globs naming the private rooms (salas.auth.RoomRules): entered only by users whose
    # token's `rooms` claim matches them, and by moderators and admins; without token auth
    # (`create_app(..., auth=...)`) nobody may enter them.
    private_rooms: tuple[str, ...] = ()
    # With token auth, let users change the name their token gives them (`nick`); without
    # auth, `nick` is always allowed.
    allow_nick: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.private_rooms, str):
            raise TypeError("ChatConfig.private_rooms is a tuple of patterns, not a string")
        for name in ("typing_timeout", "typing_throttle"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ChatConfig.{name} must be positive")
        if self.message_rate < 0:
            raise ValueError("ChatConfig.message_rate must not be negative (0: no limit)")
        if self.rooms_interval < 0:
            raise ValueError("ChatConfig.rooms_interval must not be negative")
        if self.event_cutoff < 0:
            raise ValueError("ChatConfig.event_cutoff must not be negative (0: never)")
        if self.presence_members_max < 0:
            raise ValueError("ChatConfig.presence_members_max must not be negative")
        for name in (
            "join_history",
            "max_rooms_per_socket",
            "message_burst",
            "rooms_list_max",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"ChatConfig.{name} must be at least 1")

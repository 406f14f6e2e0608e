"""Engine.IO server settings, validated once at construction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from salas.engine.forwarded import TrustedProxies

__all__ = ["CorsConfig", "EngineConfig"]


@dataclass(frozen=True, slots=True)
class CorsConfig:
    """Which browser origins may call the server from another site.

    `origins` is "*" (any origin), a list of exact origins, or empty (no CORS headers: only
    same-origin pages can use the server).
    """

    origins: str | tuple[str, ...] = ()
    credentials: bool = False

    @classmethod
    def parse(cls, origins: str | Sequence[str] | None, credentials: bool = False) -> CorsConfig:
        if origins is None:
            return cls((), credentials)
        if isinstance(origins, str):
            if origins.strip() == "*":
                return cls("*", credentials)
            items = tuple(o.strip() for o in origins.split(",") if o.strip())
            return cls(items, credentials)
        return cls(tuple(origins), credentials)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    path: str = "/engine.io/"
    ping_interval: float = 25.0  # seconds between server pings
    ping_timeout: float = 20.0  # seconds a client has to answer a ping
    upgrade_timeout: float = 10.0  # seconds a websocket probe has to complete the upgrade
    max_payload: int = 1_000_000  # bytes in one polling body or one websocket message
    # Bytes of unsent output a connection may hold before it is cut off as a slow consumer.
    max_buffer: int = 4 * 1024 * 1024
    # Above this many unsent bytes, volatile packets to that connection are dropped.
    volatile_buffer: int = 256 * 1024
    transports: tuple[str, ...] = ("polling", "websocket")
    cors: CorsConfig = field(default_factory=CorsConfig)
    # Seconds the complete head of a request may take to arrive, counted from its first byte
    # (from the connection's opening for its first request): slow-header attacks end here.
    head_timeout: float = 10.0
    # Seconds a request body may go without a new byte arriving.
    body_timeout: float = 10.0
    # Seconds an HTTP connection may stay idle between requests. None of these apply while the
    # server holds a request (a long-polling GET) or after a websocket upgrade.
    keep_alive_timeout: float = 5.0
    # Open TCP connections in total, and per client address; 0: no limit.
    max_connections: int = 10_000
    max_connections_per_ip: int = 1000
    # Peers (IPs, CIDRs, or "*") whose X-Forwarded-For names the client; empty: none.
    forwarded_allow_ips: tuple[str, ...] = ()
    # Inbound budget per connection (salas.engine.budget), checked before decoding: packets
    # per second with a burst, and bytes per second (its burst is max_payload). 0: no limit.
    inbound_rate: float = 100.0
    inbound_burst: int = 1000
    inbound_bytes_rate: float = 1_000_000.0
    # Seconds a connection may go on sending over its budget before it is cut off.
    inbound_grace: float = 2.0
    # Packets one long-polling POST may carry; more: 400 and the session is closed.
    max_post_packets: int = 500
    # Seconds a websocket connection written to waits before its next write, gathering what
    # it is sent meanwhile into that write (salas.engine.scheduler, "Write pacing"); 0: none.
    write_interval: float = 0.0

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"path must start with '/': {self.path!r}")
        if not self.path.endswith("/"):
            object.__setattr__(self, "path", self.path + "/")
        for name in (
            "ping_interval",
            "ping_timeout",
            "upgrade_timeout",
            "head_timeout",
            "body_timeout",
            "keep_alive_timeout",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        for name in ("max_connections", "max_connections_per_ip"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative (0: no limit)")
        TrustedProxies(self.forwarded_allow_ips)  # raises ValueError on a bad address
        if self.max_payload <= 0:
            raise ValueError("max_payload must be positive")
        for name in ("inbound_rate", "inbound_bytes_rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative (0: no limit)")
        if self.inbound_burst < 1 or self.max_post_packets < 1:
            raise ValueError("inbound_burst and max_post_packets must be at least 1")
        if not 0 <= self.write_interval <= 1:
            raise ValueError("write_interval must be from 0 to 1 second")
        if self.inbound_grace <= 0:
            raise ValueError("inbound_grace must be positive")
        if self.volatile_buffer > self.max_buffer:
            raise ValueError("volatile_buffer must not exceed max_buffer")
        unknown = set(self.transports) - {"polling", "websocket"}
        if unknown or not self.transports:
            raise ValueError(f"transports must be among polling, websocket: {self.transports}")

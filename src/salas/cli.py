"""The `salas` command: `salas serve` runs the chat, `salas token` mints a login token.

Every option of `serve` is also an environment variable (`--port` / `SALAS_PORT`, ...);
a flag wins over the environment, which wins over the default. A bad setting ends the
program with one line on stderr and exit code 2, before anything starts.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote

from salas import __version__
from salas.auth import RoomRules, TokenVerifier
from salas.chat.config import ChatConfig
from salas.db.urls import backend_of, redact, split_sqlite_url
from salas.engine import CorsConfig, EngineConfig
from salas.engine.forwarded import TrustedProxies, parse_forwarded_allow_ips
from salas.logs import LOG_FORMATS, configure_logging
from salas.server.server import run_loop
from salas.store import SUPPORTED_URLS, StoreError

if TYPE_CHECKING:
    from salas.chat.api import ApiConfig

__all__ = [
    "ConfigError",
    "ServeSettings",
    "is_loopback",
    "main",
    "parse_settings",
    "parse_ttl",
    "store_url",
    "token_main",
]

logger = logging.getLogger("salas.chat")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_DB = "salas.db"
DEFAULT_LOG_LEVEL = "info"
DEFAULT_LOG_FORMAT = "text"
# The chat's own defaults, so that `salas serve` and `create_app(ChatConfig())` agree.
_CHAT_DEFAULTS = ChatConfig()
DEFAULT_SINGLE_ROOM = _CHAT_DEFAULTS.single_room
DEFAULT_MESSAGE_RATE = _CHAT_DEFAULTS.message_rate
DEFAULT_MESSAGE_BURST = _CHAT_DEFAULTS.message_burst
# The engine's HTTP defaults, from the one place they are set.
_ENGINE_DEFAULTS = EngineConfig()
DEFAULT_TIMEOUT_HEAD = _ENGINE_DEFAULTS.head_timeout
DEFAULT_TIMEOUT_BODY = _ENGINE_DEFAULTS.body_timeout
DEFAULT_TIMEOUT_KEEP_ALIVE = _ENGINE_DEFAULTS.keep_alive_timeout
DEFAULT_MAX_CONNECTIONS = _ENGINE_DEFAULTS.max_connections
DEFAULT_MAX_CONNECTIONS_PER_IP = _ENGINE_DEFAULTS.max_connections_per_ip
DEFAULT_EVENT_CUTOFF = _CHAT_DEFAULTS.event_cutoff
DEFAULT_INBOUND_RATE = _ENGINE_DEFAULTS.inbound_rate
DEFAULT_INBOUND_BURST = _ENGINE_DEFAULTS.inbound_burst
DEFAULT_INBOUND_BYTES_RATE = _ENGINE_DEFAULTS.inbound_bytes_rate
DEFAULT_MAX_POST_PACKETS = _ENGINE_DEFAULTS.max_post_packets
DEFAULT_WRITE_INTERVAL_MS = round(_ENGINE_DEFAULTS.write_interval * 1000)
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")

EXIT_OK = 0
EXIT_FAILURE = 1  # could not start: store or port unusable
EXIT_CONFIG = 2  # bad flags, environment or configuration


class ConfigError(Exception):
    """A setting that cannot work; the message names the flag or variable it came from."""


@dataclass(frozen=True, slots=True)
class ServeSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    db: str = DEFAULT_DB  # a store URL, or a bare path meaning a SQLite file
    single_room: bool = DEFAULT_SINGLE_ROOM
    cors_origins: str | tuple[str, ...] | None = None
    log_level: str = DEFAULT_LOG_LEVEL
    message_rate: float = DEFAULT_MESSAGE_RATE  # per connection and second; 0: no limit
    message_burst: int = DEFAULT_MESSAGE_BURST
    recovery: bool = True  # connection state recovery, its state in the --db database
    timeout_head: float = DEFAULT_TIMEOUT_HEAD
    timeout_body: float = DEFAULT_TIMEOUT_BODY
    timeout_keep_alive: float = DEFAULT_TIMEOUT_KEEP_ALIVE
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # 0: no limit
    max_connections_per_ip: int = DEFAULT_MAX_CONNECTIONS_PER_IP  # 0: no limit
    forwarded_allow_ips: tuple[str, ...] = ()
    healthz_details: bool = False  # /healthz shows the store's path and error text
    event_cutoff: int = DEFAULT_EVENT_CUTOFF  # refused events in a row; 0: never cut off
    inbound_rate: float = DEFAULT_INBOUND_RATE  # packets per connection and second; 0: none
    inbound_burst: int = DEFAULT_INBOUND_BURST
    inbound_bytes_rate: float = DEFAULT_INBOUND_BYTES_RATE  # bytes per second; 0: no limit
    max_post_packets: int = DEFAULT_MAX_POST_PACKETS
    write_interval: float = DEFAULT_WRITE_INTERVAL_MS / 1000  # seconds (the flag is in ms)
    log_format: str = DEFAULT_LOG_FORMAT  # "text" for people, "json": one object per line
    # The HTTP publish API's bearer token; None: the API is off. Never in a repr or a log.
    api_token: str | None = field(default=None, repr=False)
    admin_ui: str | None = None  # "USER:PASSWORD" of the Socket.IO Admin UI; None: off
    # -- metrics (--metrics, --metrics-token) --
    metrics: bool = False  # Prometheus metrics at /metrics
    # Bearer token /metrics requires; None: open. Never in a repr or a log.
    metrics_token: str | None = field(default=None, repr=False)
    # Token auth: on with a secret (HS256) or a PEM public key file (RS256/ES256).
    jwt_secret: str | None = None
    jwt_public_key: str | None = None  # the file's path
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    private_rooms: tuple[str, ...] = ()  # globs; entered only with a token that allows them
    allow_nick: bool = False  # with token auth, users may still rename themselves
    # -- cluster (--workers, --redis, --redis-prefix) --
    workers: int = 1  # processes serving on one port (salas.cluster.workers)
    redis: str | None = None  # the Redis URL of the cluster this process joins; None: alone
    redis_prefix: str | None = None  # its keys' and channels' prefix; None: from the store
    worker: tuple[int, int] | None = None  # (index, fd): this process is a worker

    @property
    def auth(self) -> bool:
        """Whether token auth is on."""
        return self.jwt_secret is not None or self.jwt_public_key is not None

    def token_verifier(self) -> TokenVerifier | None:
        """The verifier of the configured key (the public key file is read now); None
        without token auth.

        Raises:
            ConfigError: Both a secret and a key, an unreadable file, or a key or secret
                the verifier refuses.
        """
        if not self.auth:
            return None
        if self.jwt_secret is not None and self.jwt_public_key is not None:
            raise ConfigError(
                "--jwt-secret and --jwt-public-key: give one of them, not both "
                "(SALAS_JWT_SECRET / SALAS_JWT_PUBLIC_KEY)"
            )
        public_key = None
        if self.jwt_public_key is not None:
            try:
                with open(self.jwt_public_key, "rb") as file:
                    public_key = file.read()
            except OSError as exc:
                raise ConfigError(
                    f"--jwt-public-key: cannot read {self.jwt_public_key!r}: {exc.strerror or exc}"
                ) from None
        try:
            return TokenVerifier(
                secret=self.jwt_secret,
                public_key=public_key,
                issuer=self.jwt_issuer,
                audience=self.jwt_audience,
            )
        except (ValueError, ImportError) as exc:
            source = "--jwt-secret" if self.jwt_secret is not None else "--jwt-public-key"
            raise ConfigError(f"{source}: {exc}") from None

    def server_options(self) -> dict[str, Any]:
        """The `salas.Server` keyword arguments these settings stand for."""
        options = self._admin_ui_server_options() | self._metrics_server_options()
        return options | {
            "head_timeout": self.timeout_head,
            "body_timeout": self.timeout_body,
            "keep_alive_timeout": self.timeout_keep_alive,
            "max_connections": self.max_connections,
            "max_connections_per_ip": self.max_connections_per_ip,
            "forwarded_allow_ips": self.forwarded_allow_ips,
            "inbound_rate": self.inbound_rate,
            "inbound_burst": self.inbound_burst,
            "inbound_bytes_rate": self.inbound_bytes_rate,
            "max_post_packets": self.max_post_packets,
            "write_interval": self.write_interval,
        }

    # -- metrics (--metrics, --metrics-token) --
    def _metrics_server_options(self) -> dict[str, Any]:
        if not self.metrics:
            return {}
        return {"metrics": True, "metrics_token": self.metrics_token}

    # -- the Admin UI (--admin-ui) --
    def _admin_ui_server_options(self) -> dict[str, Any]:
        # The dashboard's client sends credentials (withCredentials): its origin must be
        # answered with Allow-Credentials. Only for origins listed by name: with "*" that
        # would let every site make credentialed requests.
        if self.admin_ui and isinstance(self.cors_origins, tuple):
            return {"cors_credentials": True}
        return {}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="salas", description="salas: a real-time chat-room server on Socket.IO.")
    parser.add_argument("--version", action="version", version=f"salas {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the chat server",
        description="Run the chat: the web page at /, Socket.IO at /socket.io/, /healthz. "
        "Each option can also be set with the environment variable in brackets; a flag "
        "wins over the environment.",
    )
    serve.add_argument("--host", help=f"address to listen on [SALAS_HOST] ({DEFAULT_HOST})")
    serve.add_argument(
        "--port", help=f"port to listen on, 0 for any free one [SALAS_PORT] ({DEFAULT_PORT})"
    )
    serve.add_argument(
        "--db",
        help="message store: a SQLite file path, sqlite:///path.db, postgresql://..., "
        f"or memory:// [SALAS_DB] ({DEFAULT_DB})",
    )
    serve.add_argument(
        "--single-room",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="joining a room leaves the previous one [SALAS_SINGLE_ROOM=1/true/yes] (off)",
    )
    serve.add_argument(
        "--cors-origins",
        help="origins allowed cross-site: '*' or a comma list of http(s)://host[:port] "
        "[SALAS_CORS_ORIGINS] (none: same origin only)",
    )
    serve.add_argument(
        "--message-rate",
        help="chat events per second one connection may send on average (a message, join, "
        "leave, history or nick costs 1, typing 0.2), 0 for no limit "
        f"[SALAS_MESSAGE_RATE] ({DEFAULT_MESSAGE_RATE:g})",
    )
    serve.add_argument(
        "--message-burst",
        help="chat events one connection may send at once before the rate applies "
        f"[SALAS_MESSAGE_BURST] ({DEFAULT_MESSAGE_BURST})",
    )
    serve.add_argument(
        "--event-cutoff",
        help="chat events refused in a row (over the rate) after which the connection is "
        f"closed, 0 for never [SALAS_EVENT_CUTOFF] ({DEFAULT_EVENT_CUTOFF})",
    )
    serve.add_argument(
        "--inbound-rate",
        help="Engine.IO packets per second one connection may send, counted before decoding; "
        "over it packets are dropped, and a connection still over it after 2 s is closed; "
        f"0 for no limit [SALAS_INBOUND_RATE] ({DEFAULT_INBOUND_RATE:g})",
    )
    serve.add_argument(
        "--inbound-burst",
        help="packets one connection may send at once above --inbound-rate "
        f"[SALAS_INBOUND_BURST] ({DEFAULT_INBOUND_BURST})",
    )
    serve.add_argument(
        "--inbound-bytes-rate",
        help="bytes per second one connection may send (its burst: the 1 MB max payload), "
        f"0 for no limit [SALAS_INBOUND_BYTES_RATE] ({DEFAULT_INBOUND_BYTES_RATE:g})",
    )
    serve.add_argument(
        "--max-post-packets",
        help="packets one long-polling POST may carry; more: 400 and the connection closed "
        f"[SALAS_MAX_POST_PACKETS] ({DEFAULT_MAX_POST_PACKETS})",
    )
    serve.add_argument(
        "--write-interval",
        metavar="MS",
        help="milliseconds a busy websocket connection waits after a write before the next, "
        "gathering what it is sent meanwhile into one write (a connection sent less often "
        "is not delayed); 0 to write every loop iteration [SALAS_WRITE_INTERVAL] "
        f"({DEFAULT_WRITE_INTERVAL_MS})",
    )
    serve.add_argument(
        "--recovery",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="connection state recovery: a client that reconnects within 2 minutes gets "
        "what it missed, also across a restart (its state is kept in --db); broadcasts then "
        "carry their offset as a last extra argument [SALAS_RECOVERY=1/0] (on)",
    )
    serve.add_argument(
        "--timeout-head",
        help="seconds a request's head (request line and headers) may take to arrive "
        f"[SALAS_TIMEOUT_HEAD] ({DEFAULT_TIMEOUT_HEAD:g})",
    )
    serve.add_argument(
        "--timeout-body",
        help="seconds a request body may go without progress "
        f"[SALAS_TIMEOUT_BODY] ({DEFAULT_TIMEOUT_BODY:g})",
    )
    serve.add_argument(
        "--timeout-keep-alive",
        help="seconds an HTTP connection may stay idle between requests; never applied to "
        "a held long-polling request or a websocket "
        f"[SALAS_TIMEOUT_KEEP_ALIVE] ({DEFAULT_TIMEOUT_KEEP_ALIVE:g})",
    )
    serve.add_argument(
        "--max-connections",
        help="open connections in total, beyond which new ones get 503, 0 for no limit "
        f"[SALAS_MAX_CONNECTIONS] ({DEFAULT_MAX_CONNECTIONS})",
    )
    serve.add_argument(
        "--max-connections-per-ip",
        help="open connections per client address, beyond which new ones get 429, 0 for "
        f"no limit [SALAS_MAX_CONNECTIONS_PER_IP] ({DEFAULT_MAX_CONNECTIONS_PER_IP})",
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        help="proxies whose X-Forwarded-For names the client: a comma list of IPs/CIDRs, "
        "or '*' [SALAS_FORWARDED_ALLOW_IPS] (none)",
    )
    serve.add_argument(
        "--healthz-details",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="/healthz also shows the store's details: backend, file path or schema, error "
        "text, counters [SALAS_HEALTHZ_DETAILS=1/0] (off: only whether the server and store "
        "are ok, and the number of connections)",
    )
    # -- the Admin UI (--admin-ui) --
    serve.add_argument(
        "--admin-ui",
        metavar="USER:PASSWORD",
        help="serve the official Socket.IO Admin UI's namespace /admin to this login; list "
        "the dashboard's origin in --cors-origins (https://admin.socket.io) "
        "[SALAS_ADMIN_UI] (off)",
    )
    # -- metrics (--metrics, --metrics-token) --
    serve.add_argument(
        "--metrics",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve Prometheus metrics at /metrics, on the same port (needs the 'metrics' "
        "extra); without --metrics-token keep that port private [SALAS_METRICS=1/0] (off)",
    )
    serve.add_argument(
        "--metrics-token",
        metavar="TOKEN",
        help="/metrics requires 'Authorization: Bearer TOKEN' [SALAS_METRICS_TOKEN] (none: "
        "open to whoever reaches the port)",
    )
    serve.add_argument(
        "--jwt-secret",
        help="turn token auth on: the HS256 secret (32 bytes at least) that login tokens are "
        "signed with (salas token mints them) [SALAS_JWT_SECRET] (none: anonymous mode)",
    )
    serve.add_argument(
        "--jwt-public-key",
        metavar="FILE",
        help="or turn token auth on with a PEM public key: RSA (RS256) or P-256 EC (ES256) "
        "[SALAS_JWT_PUBLIC_KEY] (none)",
    )
    serve.add_argument(
        "--jwt-issuer", help="the iss every token must carry [SALAS_JWT_ISSUER] (not checked)"
    )
    serve.add_argument(
        "--jwt-audience",
        help="what every token's aud must name [SALAS_JWT_AUDIENCE] (tokens naming one refused)",
    )
    serve.add_argument(
        "--private-rooms",
        metavar="PATTERNS",
        help="private rooms, comma-separated names or globs ('staff-*,ops'): entered only "
        "with a token whose rooms claim allows them, or by moderators and admins "
        "[SALAS_PRIVATE_ROOMS] (none)",
    )
    serve.add_argument(
        "--allow-nick",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with token auth, users may still change their name with nick "
        "[SALAS_ALLOW_NICK=1/0] (off: the name comes from the token)",
    )
    serve.add_argument(
        "--log-level",
        help=f"{', '.join(LOG_LEVELS)} [SALAS_LOG_LEVEL] ({DEFAULT_LOG_LEVEL})",
    )
    serve.add_argument(
        "--log-format",
        help="text, or json: one JSON object per line (ts, level, logger, message, exc_info "
        f"and the record's extra fields) [SALAS_LOG_FORMAT] ({DEFAULT_LOG_FORMAT})",
    )
    _add_api_flags(serve)
    _add_cluster_flags(serve)
    _add_token_command(commands)
    return parser


def _pick(flag: Any, env: Mapping[str, str], var: str, option: str) -> tuple[Any, str] | None:
    """The value a setting gets and where it came from (for error messages)."""
    if flag is not None:
        return flag, option
    if var in env:
        return env[var], var
    return None


def _port(raw: str, source: str) -> int:
    text = str(raw).strip()
    if not text.isdecimal() or not text.isascii():
        raise ConfigError(f"{source}: {raw!r} is not a port number (0 to 65535)")
    port = int(text)
    if not 0 <= port <= 65535:
        raise ConfigError(f"{source}: port {port} is out of range (0 to 65535)")
    return port


def _bool(raw: str, source: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{source}: {raw!r} is not a boolean (use 1/true/yes or 0/false/no)")


def _origins(raw: str, source: str) -> str | tuple[str, ...] | None:
    origins = CorsConfig.parse(raw).origins
    if origins == "*":
        return "*"
    checked = []
    for item in origins:
        origin = item.rstrip("/")  # a browser's Origin never ends with "/"
        if not origin:
            continue
        scheme, sep, host = origin.partition("://")
        if scheme not in ("http", "https") or not sep or not host or "/" in host:
            raise ConfigError(
                f"{source}: {item!r} is not an origin (expected '*' or "
                "http(s)://host[:port], comma-separated)"
            )
        checked.append(origin)
    return tuple(checked) or None


def _rate(raw: str, source: str) -> float:
    try:
        rate = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{source}: {raw!r} is not a number") from None
    if not 0 <= rate < float("inf"):
        raise ConfigError(f"{source}: {raw!r} must be 0 (no limit) or a positive number")
    return rate


def _burst(raw: str, source: str) -> int:
    text = raw.strip()
    if not text.isdecimal() or not text.isascii() or int(text) < 1:
        raise ConfigError(f"{source}: {raw!r} is not a whole number of at least 1")
    return int(text)


def _seconds(raw: str, source: str) -> float:
    try:
        seconds = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{source}: {raw!r} is not a number of seconds") from None
    if not 0 < seconds < float("inf"):
        raise ConfigError(f"{source}: {raw!r} must be a positive number of seconds")
    return seconds


def _milliseconds(raw: str, source: str) -> float:
    """A write interval: 0 to 1000 milliseconds."""
    try:
        ms = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{source}: {raw!r} is not a number of milliseconds") from None
    if not 0 <= ms <= 1000:
        raise ConfigError(f"{source}: {raw!r} must be from 0 to 1000 milliseconds")
    return ms


def _proxies(raw: str, source: str) -> tuple[str, ...]:
    items = parse_forwarded_allow_ips(raw)
    try:
        TrustedProxies(items)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return items


def _count(raw: str, source: str) -> int:
    """A whole number, 0 or more (0 means none/no limit for the settings that use it)."""
    text = raw.strip()
    if not text.isdecimal() or not text.isascii():
        raise ConfigError(f"{source}: {raw!r} is not a whole number (0 or more)")
    return int(text)


def _admin_ui(raw: str, source: str) -> str:
    from salas.admin import parse_credentials

    try:
        parse_credentials(raw)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return raw


def _log_level(raw: str, source: str) -> str:
    level = raw.strip().lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{source}: unknown log level {raw!r} (use {', '.join(LOG_LEVELS)})")
    return level


def _log_format(raw: str, source: str) -> str:
    log_format = raw.strip().lower()
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"{source}: unknown log format {raw!r} (use {', '.join(LOG_FORMATS)})")
    return log_format


def store_url(db: str) -> str:
    """`db` as a store URL; SQLite paths made absolute, so the log says which file it is."""
    text = db.strip()
    try:
        backend, url = backend_of(text, SUPPORTED_URLS)
        if backend != "sqlite":
            return url
        path, _ = split_sqlite_url(url)
    except StoreError:
        return text  # "memory:", "file:x.db", an unknown option...: the store explains
    if not path or path.startswith(":"):
        return url  # nothing to resolve, or one of SQLite's own names (":memory:")
    query = url.partition("?")[2] if "://" in url else ""
    return "sqlite://" + quote(os.path.abspath(path)) + ("?" + query if query else "")


def parse_settings(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> tuple[str, ServeSettings]:
    """(command, settings) from the command line and environment; ConfigError if bad.

    argparse itself exits (code 2) on unknown flags, and prints --version / --help."""
    environ = os.environ if env is None else env
    args = build_parser().parse_args(argv)
    host = _pick(args.host, environ, "SALAS_HOST", "--host")
    port = _pick(args.port, environ, "SALAS_PORT", "--port")
    db = _pick(args.db, environ, "SALAS_DB", "--db")
    single = _pick(args.single_room, environ, "SALAS_SINGLE_ROOM", "--single-room")
    cors = _pick(args.cors_origins, environ, "SALAS_CORS_ORIGINS", "--cors-origins")
    level = _pick(args.log_level, environ, "SALAS_LOG_LEVEL", "--log-level")
    rate = _pick(args.message_rate, environ, "SALAS_MESSAGE_RATE", "--message-rate")
    burst = _pick(args.message_burst, environ, "SALAS_MESSAGE_BURST", "--message-burst")
    cutoff = _pick(args.event_cutoff, environ, "SALAS_EVENT_CUTOFF", "--event-cutoff")
    in_rate = _pick(args.inbound_rate, environ, "SALAS_INBOUND_RATE", "--inbound-rate")
    in_burst = _pick(args.inbound_burst, environ, "SALAS_INBOUND_BURST", "--inbound-burst")
    in_bytes = _pick(
        args.inbound_bytes_rate, environ, "SALAS_INBOUND_BYTES_RATE", "--inbound-bytes-rate"
    )
    post_packets = _pick(
        args.max_post_packets, environ, "SALAS_MAX_POST_PACKETS", "--max-post-packets"
    )
    write_ms = _pick(args.write_interval, environ, "SALAS_WRITE_INTERVAL", "--write-interval")
    recovery = _pick(args.recovery, environ, "SALAS_RECOVERY", "--recovery")
    head = _pick(args.timeout_head, environ, "SALAS_TIMEOUT_HEAD", "--timeout-head")
    body = _pick(args.timeout_body, environ, "SALAS_TIMEOUT_BODY", "--timeout-body")
    idle = _pick(
        args.timeout_keep_alive, environ, "SALAS_TIMEOUT_KEEP_ALIVE", "--timeout-keep-alive"
    )
    conns = _pick(args.max_connections, environ, "SALAS_MAX_CONNECTIONS", "--max-connections")
    per_ip = _pick(
        args.max_connections_per_ip,
        environ,
        "SALAS_MAX_CONNECTIONS_PER_IP",
        "--max-connections-per-ip",
    )
    proxies = _pick(
        args.forwarded_allow_ips, environ, "SALAS_FORWARDED_ALLOW_IPS", "--forwarded-allow-ips"
    )
    details = _pick(args.healthz_details, environ, "SALAS_HEALTHZ_DETAILS", "--healthz-details")
    log_format = _pick(args.log_format, environ, "SALAS_LOG_FORMAT", "--log-format")
    admin_ui = _pick(args.admin_ui, environ, "SALAS_ADMIN_UI", "--admin-ui")
    secret = _pick(args.jwt_secret, environ, "SALAS_JWT_SECRET", "--jwt-secret")
    key = _pick(args.jwt_public_key, environ, "SALAS_JWT_PUBLIC_KEY", "--jwt-public-key")
    issuer = _pick(args.jwt_issuer, environ, "SALAS_JWT_ISSUER", "--jwt-issuer")
    audience = _pick(args.jwt_audience, environ, "SALAS_JWT_AUDIENCE", "--jwt-audience")
    private = _pick(args.private_rooms, environ, "SALAS_PRIVATE_ROOMS", "--private-rooms")
    allow_nick = _pick(args.allow_nick, environ, "SALAS_ALLOW_NICK", "--allow-nick")
    settings = ServeSettings(
        host=host[0].strip() if host and host[0].strip() else DEFAULT_HOST,
        port=_port(*port) if port else DEFAULT_PORT,
        db=db[0].strip() if db and db[0].strip() else DEFAULT_DB,
        single_room=_flag(single, default=DEFAULT_SINGLE_ROOM),
        cors_origins=_origins(*cors) if cors else None,
        log_level=_log_level(*level) if level else DEFAULT_LOG_LEVEL,
        message_rate=_rate(*rate) if rate else DEFAULT_MESSAGE_RATE,
        message_burst=_burst(*burst) if burst else DEFAULT_MESSAGE_BURST,
        event_cutoff=_count(*cutoff) if cutoff else DEFAULT_EVENT_CUTOFF,
        inbound_rate=_rate(*in_rate) if in_rate else DEFAULT_INBOUND_RATE,
        inbound_burst=_burst(*in_burst) if in_burst else DEFAULT_INBOUND_BURST,
        inbound_bytes_rate=_rate(*in_bytes) if in_bytes else DEFAULT_INBOUND_BYTES_RATE,
        max_post_packets=_burst(*post_packets) if post_packets else DEFAULT_MAX_POST_PACKETS,
        write_interval=(_milliseconds(*write_ms) if write_ms else DEFAULT_WRITE_INTERVAL_MS) / 1000,
        recovery=_flag(recovery, default=True),
        timeout_head=_seconds(*head) if head else DEFAULT_TIMEOUT_HEAD,
        timeout_body=_seconds(*body) if body else DEFAULT_TIMEOUT_BODY,
        timeout_keep_alive=_seconds(*idle) if idle else DEFAULT_TIMEOUT_KEEP_ALIVE,
        max_connections=_count(*conns) if conns else DEFAULT_MAX_CONNECTIONS,
        max_connections_per_ip=_count(*per_ip) if per_ip else DEFAULT_MAX_CONNECTIONS_PER_IP,
        forwarded_allow_ips=_proxies(*proxies) if proxies else (),
        healthz_details=_flag(details, default=False),
        log_format=_log_format(*log_format) if log_format else DEFAULT_LOG_FORMAT,
        api_token=_api_token(args, environ),
        admin_ui=_admin_ui(*admin_ui) if admin_ui and admin_ui[0] else None,
        **_metrics_settings(args, environ),
        jwt_secret=_text(secret),
        jwt_public_key=_text(key),
        jwt_issuer=_text(issuer),
        jwt_audience=_text(audience),
        private_rooms=RoomRules.parse(private[0]).private_patterns if private else (),
        allow_nick=_flag(allow_nick, default=False),
        **_cluster_settings(args, environ, db[0] if db else DEFAULT_DB),
    )
    _check_store(settings.db, db[1] if db else "--db")
    settings.token_verifier()  # refuse a bad key or secret now, before anything starts
    return str(args.command), settings


def _text(picked: tuple[Any, str] | None) -> str | None:
    """A text setting; set but empty (or only spaces) counts as unset."""
    if picked is None:
        return None
    text = str(picked[0]).strip()
    return text or None


def _flag(picked: tuple[Any, str] | None, *, default: bool) -> bool:
    """A boolean setting: a flag's True/False, an environment variable's text, or `default`."""
    if picked is None:
        return default
    value, source = picked
    if isinstance(value, bool):
        return value
    text = str(value)
    if not text.strip():  # set but empty: as if unset
        return default
    return _bool(text, source)


def _check_store(db: str, source: str) -> None:
    from salas.store import open_store

    try:
        open_store(store_url(db))  # only parses the URL; nothing is opened yet
    except StoreError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def is_loopback(host: str) -> bool:
    """Whether `host` listens on this machine only (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


def _warn_identity(settings: ServeSettings) -> None:
    """The startup warnings about identity: anonymous mode open to the network, and private
    rooms that nobody can enter."""
    if settings.auth:
        return
    if not is_loopback(settings.host):
        logger.warning(
            "no token auth on %s: everyone who reaches this server can post as anyone, under "
            "any name; turn auth on with --jwt-secret or --jwt-public-key",
            settings.host,
        )
    if settings.private_rooms:
        logger.warning(
            "--private-rooms is set but token auth is off: private rooms cannot be entered "
            "without auth (give --jwt-secret or --jwt-public-key)"
        )


def _http_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _announce(message: str, *args: object) -> None:
    """Log `message` at INFO even when the log level hides INFO: with `--port 0` the bound
    address is known only from this line, so `--log-level warning` must not swallow it."""
    logger.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 0, message, args, None))


async def serve(settings: ServeSettings) -> int:
    """Run the chat until SIGINT/SIGTERM; the exit code."""
    from salas.chat import create_app
    from salas.recovery import open_recovery_store
    from salas.store import StoreError, open_ban_store, open_store

    try:
        verifier = settings.token_verifier()
    except ConfigError as exc:
        print(f"salas: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    url = store_url(settings.db)
    # A node of a cluster appends a room's messages one at a time, holding the room's lock
    # (salas.cluster.ordering): no batch can form, so pacing commits would only delay each.
    store = open_store(url, commit_interval=0.0 if settings.redis is not None else None)
    try:
        await store.open()
    except StoreError as exc:
        print(f"salas: error: cannot open the store {redact(url)}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    # Bans in the same database as the messages: they survive restarts.
    bans = open_ban_store(url)
    try:
        await bans.open()
    except StoreError as exc:
        await store.close()
        print(f"salas: error: cannot open the bans of {redact(url)}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    _warn_identity(settings)
    try:
        config = ChatConfig(
            single_room=settings.single_room,
            cors_origins=settings.cors_origins,
            message_rate=settings.message_rate,
            message_burst=settings.message_burst,
            healthz_details=settings.healthz_details,
            event_cutoff=settings.event_cutoff,
            private_rooms=settings.private_rooms,
            allow_nick=settings.allow_nick,
        )
        cluster = _cluster_node(settings, url)
        # Connection state recovery in the same database: it survives restarts.
        app = create_app(
            config,
            store,
            open_recovery_store(url) if settings.recovery else None,
            server_options=settings.server_options(),
            api=_api_config(settings, verifier),
            auth=verifier,
            bans=bans,
            cluster=cluster,
        )
        if settings.admin_ui:
            from salas.admin import instrument, parse_credentials

            instrument(app.io, auth=parse_credentials(settings.admin_ui))
        if settings.worker is not None:
            return await _serve_worker(app, settings, settings.worker)
        try:
            port = await app.start(settings.host, settings.port)
        except _redis_errors() as exc:
            print(
                f"salas: error: cannot reach Redis {redact(str(settings.redis))}: {exc}",
                file=sys.stderr,
            )
            await cluster.close()
            return EXIT_FAILURE
        except StoreError as exc:
            print(f"salas: error: cannot open the recovery store: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        except OSError as exc:
            print(
                f"salas: error: cannot listen on {settings.host}:{settings.port}: "
                f"{exc.strerror or exc}",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        _announce(
            "salas chat listening on %s (store: %s, single-room: %s, recovery: %s, auth: %s)",
            _http_url(settings.host, port),
            redact(url),
            "on" if settings.single_room else "off",
            "on" if settings.recovery else "off",
            verifier.algorithm if verifier is not None else "off",
        )
        if settings.api_token is not None:
            logger.info("HTTP API on at /api/ (described at /api/openapi.json)")
        if cluster is not None:
            _announce_cluster(settings, url, cluster.node_id)
        await app.io.until_stopped()
        logger.info("salas chat shutting down")
        # Stop accepting and close every connection, then write what the store still
        # holds and close it (below).
        await app.shutdown()
    finally:
        await bans.close()
        await store.close()
    logger.info("salas chat stopped")
    return EXIT_OK


def _serve_workers(settings: ServeSettings, argv: Sequence[str]) -> int:
    """The parent of `--workers N` (salas.cluster.workers): the workers run `argv`."""
    from salas.cluster.workers import supervise

    return run_loop(
        supervise(
            argv,
            settings.workers,
            settings.host,
            settings.port,
            head_timeout=settings.timeout_head,
            max_waiting=settings.max_connections,
            max_waiting_per_address=settings.max_connections_per_ip,
            local_hub=settings.redis is None,
            announce=_announce,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `salas` console script and of `python -m salas`."""
    if build_parser().parse_args(argv).command == "token":
        return token_main(argv, os.environ)
    try:
        command, settings = parse_settings(argv)
    except ConfigError as exc:
        print(f"salas: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_level, settings.log_format)
    assert command == "serve"  # `token` is handled above; argparse refuses others
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the handlers are in place
        if settings.workers > 1 and settings.worker is None:
            return _serve_workers(settings, sys.argv[1:] if argv is None else argv)
        return run_loop(serve(settings))
    return 128 + signal.SIGINT


# -- the HTTP publish API (salas.chat.api) ------------------------------------------------------
def _add_api_flags(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--api-token",
        help="turn the HTTP publish API on (/api/, docs/api.md), authorized by "
        "'Authorization: Bearer <this token>'; at least 16 printable ASCII characters "
        "[SALAS_API_TOKEN] (off)",
    )


def _api_token(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    """The API token from --api-token or SALAS_API_TOKEN (empty: off), checked as
    `ApiConfig` checks it."""
    from salas.chat.api import ApiConfig

    picked = _pick(args.api_token, environ, "SALAS_API_TOKEN", "--api-token")
    if picked is None or not str(picked[0]).strip():
        return None
    token, source = str(picked[0]).strip(), picked[1]
    try:
        ApiConfig(token=token)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None  # (never the token itself)
    return token


# -- metrics (--metrics, --metrics-token) --
def _metrics_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """`metrics` and `metrics_token` from the flags and SALAS_METRICS / SALAS_METRICS_TOKEN;
    the extra is checked here, so a missing one is a configuration error at start."""
    on = _flag(_pick(args.metrics, environ, "SALAS_METRICS", "--metrics"), default=False)
    picked = _pick(args.metrics_token, environ, "SALAS_METRICS_TOKEN", "--metrics-token")
    token = str(picked[0]).strip() if picked is not None else ""
    if token and not on:
        raise ConfigError(f"{picked[1] if picked else '--metrics-token'}: needs --metrics")
    if on:
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            from salas._extras import extra_needed

            raise ConfigError(extra_needed("--metrics", "metrics")) from None
    return {"metrics": on, "metrics_token": token or None}


async def _serve_worker(app: Any, settings: ServeSettings, worker: tuple[int, int]) -> int:
    """Serve as worker `index` of `--workers`: connections come from the parent."""
    from salas.cluster.workers import WorkerLink

    index, fd = worker
    link = WorkerLink(app.io.engine, index, settings.workers, fd)
    try:
        await app.open()
    except _redis_errors() as exc:
        print(
            f"salas: error: cannot reach Redis {redact(str(settings.redis))}: {exc}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    except StoreError as exc:
        print(f"salas: error: cannot open the recovery store: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    link.start()
    logger.info("worker %d serving (pid %d)", index, os.getpid())
    await app.io.until_stopped()
    link.close()
    await app.shutdown()
    return EXIT_OK


def _api_config(settings: ServeSettings, verifier: TokenVerifier | None) -> ApiConfig:
    """The chat's `ApiConfig`: on with `--api-token`, and with token auth on, for JWTs of
    role admin too (`verifier`); off otherwise."""
    from salas.chat.api import ApiConfig

    return ApiConfig(token=settings.api_token, verifier=verifier)


# -- cluster (--workers, --redis, --redis-prefix) ----------------------------------------------
def _add_cluster_flags(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--workers",
        help="worker processes serving on one port, or 'auto' for one per core; without "
        "--redis they share rooms through the parent's in-memory hub [SALAS_WORKERS] (1)",
    )
    # Internal: how the parent of --workers starts each worker ("INDEX:FD").
    serve.add_argument("--cluster-worker", help=argparse.SUPPRESS)
    serve.add_argument(
        "--redis",
        help="join the cluster of every salas serve with this Redis URL and the same --db "
        "(redis://host:6379/0): rooms, presence, typing and moderation shared; --db must be "
        "PostgreSQL (or, on one machine only, one SQLite file) [SALAS_REDIS] (none: alone)",
    )
    serve.add_argument(
        "--redis-prefix",
        help="prefix of the cluster's Redis keys and channels [SALAS_REDIS_PREFIX] "
        "(salas: and a hash of the --db URL, so two chats on one Redis never mix)",
    )


def _cluster_settings(
    args: argparse.Namespace, environ: Mapping[str, str], db: str
) -> dict[str, Any]:
    """`workers`, `redis`, `redis_prefix` and `worker` from the flags and SALAS_WORKERS /
    SALAS_REDIS / SALAS_REDIS_PREFIX; more than one worker without Redis share the parent's
    local hub (`salas.cluster.hub`), which serves only them."""
    from salas.cluster.workers import parse_workers

    picked_workers = _pick(args.workers, environ, "SALAS_WORKERS", "--workers")
    workers = 1
    if picked_workers is not None and str(picked_workers[0]).strip():
        try:
            workers = parse_workers(str(picked_workers[0]))
        except ValueError as exc:
            raise ConfigError(f"{picked_workers[1]}: {exc}") from None
    worker = None
    if args.cluster_worker:
        index, _, fd = str(args.cluster_worker).partition(":")
        worker = (int(index), int(fd))
    picked = _pick(args.redis, environ, "SALAS_REDIS", "--redis")
    prefix = _text(_pick(args.redis_prefix, environ, "SALAS_REDIS_PREFIX", "--redis-prefix"))
    url = _text(picked)
    if workers > 1 and not hasattr(socket, "send_fds"):
        raise ConfigError("--workers: handing connections to workers needs a Unix system")
    if url is None:
        if prefix is not None:
            raise ConfigError("--redis-prefix: needs --redis")
        if workers > 1:  # the workers' cluster is the parent's local hub
            _check_cluster(picked_workers[1] if picked_workers else "--workers", db)
        return {"workers": workers, "worker": worker}
    source = picked[1] if picked else "--redis"
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{source}: {redact(url)!r} is not a redis://, rediss:// or unix:// URL")
    _check_cluster(source, db)
    if prefix is not None and (len(prefix) > 100 or not prefix.isprintable() or " " in prefix):
        raise ConfigError("--redis-prefix: at most 100 printable characters, no spaces")
    return {"workers": workers, "worker": worker, "redis": url, "redis_prefix": prefix}


def _check_cluster(source: str, db: str) -> None:
    """Refuse a cluster (over Redis or the local hub) on a store its processes cannot share,
    or without redis-py, the nodes' client."""
    if store_url(db.strip() or DEFAULT_DB).startswith("memory:"):
        raise ConfigError(
            f"{source}: a cluster needs a database its nodes share (--db postgresql://... or a "
            "SQLite file on one machine), not memory://"
        )
    try:
        from salas.adapter.redis import load_redis

        load_redis()
    except ImportError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def cluster_prefix(settings: ServeSettings, url: str) -> str:
    """The cluster's Redis prefix: `--redis-prefix`, or ``salas:`` and a hash of the store
    URL (credentials left out), the same on every node of one chat."""
    if settings.redis_prefix is not None:
        return settings.redis_prefix
    import hashlib

    return "salas:" + hashlib.sha256(redact(url).encode()).hexdigest()[:12]


def _cluster_node(settings: ServeSettings, url: str) -> Any:
    if settings.redis is None:
        return None
    from salas.cluster.node import ClusterNode

    return ClusterNode(settings.redis, cluster_prefix(settings, url))


def _redis_errors() -> tuple[type[BaseException], ...]:
    try:
        from redis.exceptions import RedisError
    except ImportError:
        return ()
    return (RedisError,)


def _announce_cluster(settings: ServeSettings, url: str, node_id: str) -> None:
    _announce(
        "cluster node %s on %s (prefix %s)",
        node_id,
        redact(str(settings.redis)),
        cluster_prefix(settings, url),
    )
    if url.startswith("sqlite"):
        logger.warning(
            "cluster on a SQLite file: only processes of this machine can share it; "
            "several machines need --db postgresql://..."
        )


# -- salas token ------------------------------------------------------------------------------
_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL = 366 * 86400


def _add_token_command(commands: Any) -> None:
    token = commands.add_parser(
        "token",
        help="mint a login token (HS256, with the --jwt-secret the server uses)",
        description="Print an HS256 token for a user, then the page URL that logs in with it. "
        "The secret, issuer and audience must be those given to `salas serve`.",
    )
    token.add_argument("--sub", required=True, help="the user id (the token's sub)")
    token.add_argument("--name", help="the display name (default: the user id)")
    token.add_argument(
        "--rooms",
        default="",
        help="private rooms the user may enter: names or globs, 'staff-*,ops'",
    )
    token.add_argument("--role", default="member", help="member, moderator or admin (member)")
    token.add_argument("--ttl", default="8h", help="lifetime: seconds, or with s/m/h/d (8h)")
    token.add_argument("--jwt-secret", help="the HS256 secret [SALAS_JWT_SECRET]")
    token.add_argument("--jwt-issuer", help="the iss claim [SALAS_JWT_ISSUER]")
    token.add_argument("--jwt-audience", help="the aud claim [SALAS_JWT_AUDIENCE]")
    token.add_argument(
        "--host", help=f"the server's host, for the URL [SALAS_HOST] ({DEFAULT_HOST})"
    )
    token.add_argument(
        "--port", help=f"the server's port, for the URL [SALAS_PORT] ({DEFAULT_PORT})"
    )


def parse_ttl(raw: str, source: str = "--ttl") -> int:
    """A lifetime such as ``90``, ``30m``, ``8h`` or ``2d`` in seconds; ConfigError if bad."""
    text = raw.strip().lower()
    unit = _TTL_UNITS.get(text[-1:]) if text else None
    number = text[:-1] if unit is not None else text
    if not number.isdecimal() or not number.isascii():
        raise ConfigError(f"{source}: {raw!r} is not a duration (e.g. 90, 30m, 8h, 2d)")
    seconds = int(number) * (unit or 1)
    if not 0 < seconds <= MAX_TTL:
        raise ConfigError(f"{source}: {raw!r} must be more than 0 and at most 366d")
    return seconds


def _login_url(host: str, port: int, token: str) -> str:
    # A wildcard address is where the server listens, not where a browser can go.
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    return _http_url(shown, port) + "#token=" + token


def token_main(argv: Sequence[str] | None, env: Mapping[str, str]) -> int:
    """`salas token ...`: print a token and its login URL; the exit code."""
    from salas.auth import AuthError, mint_token

    args = build_parser().parse_args(argv)
    try:
        secret = _pick(args.jwt_secret, env, "SALAS_JWT_SECRET", "--jwt-secret")
        if secret is None or not str(secret[0]):
            if env.get("SALAS_JWT_PUBLIC_KEY"):
                raise ConfigError(
                    "SALAS_JWT_PUBLIC_KEY is set but a public key cannot sign: mint RS256/ES256 "
                    "tokens where the private key is; salas token needs --jwt-secret"
                )
            raise ConfigError("no secret to sign with: give --jwt-secret or SALAS_JWT_SECRET")
        issuer = _pick(args.jwt_issuer, env, "SALAS_JWT_ISSUER", "--jwt-issuer")
        audience = _pick(args.jwt_audience, env, "SALAS_JWT_AUDIENCE", "--jwt-audience")
        host = _pick(args.host, env, "SALAS_HOST", "--host")
        port = _pick(args.port, env, "SALAS_PORT", "--port")
        ttl = parse_ttl(args.ttl)
        rooms = [room.strip() for room in args.rooms.split(",") if room.strip()]
        try:
            token = mint_token(
                str(secret[0]),
                args.sub,
                name=args.name,
                rooms=rooms,
                role=args.role,
                ttl=ttl,
                issuer=str(issuer[0]) if issuer else None,
                audience=str(audience[0]) if audience else None,
            )
        except ValueError as exc:
            raise ConfigError(f"{secret[1]}: {exc}") from None
        except AuthError as exc:
            raise ConfigError(f"the token would be refused: {exc.reason}") from None
        url = _login_url(
            host[0].strip() if host and host[0].strip() else DEFAULT_HOST,
            _port(*port) if port else DEFAULT_PORT,
            token,
        )
    except ConfigError as exc:
        print(f"salas: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(token)
    print(url)
    return EXIT_OK

"""The `salas` command: `salas serve` runs the chat; `salas --version`.

Every option of `serve` is also an environment variable (`--port` / `SALAS_PORT`, ...);
a flag wins over the environment, which wins over the default. A bad setting ends the
program with one line on stderr and exit code 2, before anything starts.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import quote

from salas import __version__
from salas.chat.config import ChatConfig
from salas.db.urls import backend_of, redact, split_sqlite_url
from salas.engine import CorsConfig, EngineConfig
from salas.server.server import run_loop
from salas.store import SUPPORTED_URLS, StoreError

__all__ = ["ConfigError", "ServeSettings", "main", "parse_settings", "store_url"]

logger = logging.getLogger("salas.chat")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_DB = "salas.db"
DEFAULT_LOG_LEVEL = "info"
# The chat's own defaults, so that `salas serve` and `create_app(ChatConfig())` agree.
_CHAT_DEFAULTS = ChatConfig()
DEFAULT_SINGLE_ROOM = _CHAT_DEFAULTS.single_room
DEFAULT_MESSAGE_RATE = _CHAT_DEFAULTS.message_rate
DEFAULT_MESSAGE_BURST = _CHAT_DEFAULTS.message_burst
DEFAULT_EVENT_CUTOFF = _CHAT_DEFAULTS.event_cutoff
# The engine's inbound budget per connection, as `salas.Server` has it.
_ENGINE_DEFAULTS = EngineConfig()
DEFAULT_INBOUND_RATE = _ENGINE_DEFAULTS.inbound_rate
DEFAULT_INBOUND_BURST = _ENGINE_DEFAULTS.inbound_burst
DEFAULT_INBOUND_BYTES_RATE = _ENGINE_DEFAULTS.inbound_bytes_rate
DEFAULT_MAX_POST_PACKETS = _ENGINE_DEFAULTS.max_post_packets
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
    event_cutoff: int = DEFAULT_EVENT_CUTOFF  # refused events in a row; 0: never cut off
    inbound_rate: float = DEFAULT_INBOUND_RATE  # packets per connection and second; 0: none
    inbound_burst: int = DEFAULT_INBOUND_BURST
    inbound_bytes_rate: float = DEFAULT_INBOUND_BYTES_RATE  # bytes per second; 0: no limit
    max_post_packets: int = DEFAULT_MAX_POST_PACKETS


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
        "--recovery",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="connection state recovery: a client that reconnects within 2 minutes gets "
        "what it missed, also across a restart (its state is kept in --db); broadcasts then "
        "carry their offset as a last extra argument [SALAS_RECOVERY=1/0] (on)",
    )
    serve.add_argument(
        "--log-level",
        help=f"{', '.join(LOG_LEVELS)} [SALAS_LOG_LEVEL] ({DEFAULT_LOG_LEVEL})",
    )
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


def _count(raw: str, source: str) -> int:
    text = raw.strip()
    if not text.isdecimal() or not text.isascii():
        raise ConfigError(f"{source}: {raw!r} is not a whole number (0 or more)")
    return int(text)


def _log_level(raw: str, source: str) -> str:
    level = raw.strip().lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{source}: unknown log level {raw!r} (use {', '.join(LOG_LEVELS)})")
    return level


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
    recovery = _pick(args.recovery, environ, "SALAS_RECOVERY", "--recovery")
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
        recovery=_flag(recovery, default=True),
    )
    _check_store(settings.db, db[1] if db else "--db")
    return str(args.command), settings


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
    from salas.store import StoreError, open_store

    url = store_url(settings.db)
    store = open_store(url)
    try:
        await store.open()
    except StoreError as exc:
        print(f"salas: error: cannot open the store {redact(url)}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        config = ChatConfig(
            single_room=settings.single_room,
            cors_origins=settings.cors_origins,
            message_rate=settings.message_rate,
            message_burst=settings.message_burst,
            event_cutoff=settings.event_cutoff,
        )
        server_options = {
            "inbound_rate": settings.inbound_rate,
            "inbound_burst": settings.inbound_burst,
            "inbound_bytes_rate": settings.inbound_bytes_rate,
            "max_post_packets": settings.max_post_packets,
        }
        # Connection state recovery in the same database: it survives restarts.
        app = create_app(
            config,
            store,
            open_recovery_store(url) if settings.recovery else None,
            server_options=server_options,
        )
        try:
            port = await app.start(settings.host, settings.port)
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
            "salas chat listening on %s (store: %s, single-room: %s, recovery: %s)",
            _http_url(settings.host, port),
            redact(url),
            "on" if settings.single_room else "off",
            "on" if settings.recovery else "off",
        )
        await app.io.until_stopped()
        logger.info("salas chat shutting down")
        # Stop accepting and close every connection, then write what the store still
        # holds and close it (below).
        await app.shutdown()
    finally:
        await store.close()
    logger.info("salas chat stopped")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `salas` console script and of `python -m salas`."""
    try:
        command, settings = parse_settings(argv)
    except ConfigError as exc:
        print(f"salas: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    assert command == "serve"  # the only command; argparse refuses others
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the handlers are in place
        return run_loop(serve(settings))
    return 128 + signal.SIGINT

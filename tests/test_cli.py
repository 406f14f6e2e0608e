"""`salas` / `python -m salas`: settings from flags and environment, refusal of bad ones,
--version, and `salas serve` as a real process (log line, /healthz, SIGTERM/SIGINT, history
that survives a restart on SQLite)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from salas import __version__
from salas.cli import (
    DEFAULT_WRITE_INTERVAL_MS,
    ConfigError,
    ServeSettings,
    parse_settings,
    store_url,
)

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[1]
LISTENING = re.compile(
    r"salas chat listening on http://(?P<host>[^ ]+):(?P<port>\d+)/ "
    r"\(store: (?P<store>[^,]+), single-room: (?P<single>on|off), "
    r"recovery: (?P<recovery>on|off), auth: (?P<auth>off|HS256|RS256|ES256)\)"
)
JWT_SECRET = "a-cli-test-secret-of-32-bytes-at-least"


# ------------------------------------------------------------------------ settings (in-process)
def test_defaults() -> None:
    """No flags, no environment: 127.0.0.1:8000, salas.db, multi-room, no CORS, info."""
    assert parse_settings(["serve"], {}) == ("serve", ServeSettings())
    assert ServeSettings() == ServeSettings("127.0.0.1", 8000, "salas.db", False, None, "info")


def test_environment() -> None:
    """Each SALAS_* variable sets its option."""
    env = {
        "SALAS_HOST": "0.0.0.0",
        "SALAS_PORT": "9001",
        "SALAS_DB": "memory://",
        "SALAS_SINGLE_ROOM": "yes",
        "SALAS_CORS_ORIGINS": "http://a.example, https://b.example:8443/",
        "SALAS_LOG_LEVEL": "DEBUG",
        "SALAS_MESSAGE_RATE": "2.5",
        "SALAS_MESSAGE_BURST": "7",
        "SALAS_RECOVERY": "off",
    }
    _, settings = parse_settings(["serve"], env)
    assert settings == ServeSettings(
        "0.0.0.0",
        9001,
        "memory://",
        True,
        ("http://a.example", "https://b.example:8443"),
        "debug",
        2.5,
        7,
        False,
    )


def test_budget_settings_from_flags_and_environment() -> None:
    """The inbound budget, POST packet bound and event cut-off come from flags or SALAS_*."""
    env = {"SALAS_INBOUND_RATE": "250", "SALAS_EVENT_CUTOFF": "0", "SALAS_INBOUND_BURST": "9"}
    argv = ["serve", "--inbound-burst", "3000", "--max-post-packets", "50"]
    _, settings = parse_settings([*argv, "--inbound-bytes-rate", "0"], env)
    assert (settings.inbound_rate, settings.inbound_burst) == (250.0, 3000)
    assert (settings.inbound_bytes_rate, settings.max_post_packets) == (0.0, 50)
    assert settings.event_cutoff == 0
    _, defaults = parse_settings(["serve"], {})
    assert (defaults.inbound_rate, defaults.inbound_burst, defaults.max_post_packets) == (
        100.0,
        1000,
        500,
    )
    assert (defaults.inbound_bytes_rate, defaults.event_cutoff) == (1_000_000.0, 50)
    with pytest.raises(ConfigError):
        parse_settings(["serve", "--event-cutoff", "-1"], {})
    with pytest.raises(ConfigError):
        parse_settings(["serve", "--max-post-packets", "0"], {})


def test_write_interval_from_flag_or_environment_in_milliseconds() -> None:
    """--write-interval / SALAS_WRITE_INTERVAL are milliseconds (0 to 1000), kept in seconds;
    anything else is refused."""
    _, settings = parse_settings(["serve", "--write-interval", "12.5"], {})
    assert settings.write_interval == 0.0125
    assert settings.server_options()["write_interval"] == 0.0125
    _, settings = parse_settings(["serve"], {"SALAS_WRITE_INTERVAL": "0"})
    assert settings.write_interval == 0.0
    _, defaults = parse_settings(["serve"], {})
    assert defaults.write_interval == DEFAULT_WRITE_INTERVAL_MS / 1000
    for bad in ("-1", "1001", "soon", "nan"):
        with pytest.raises(ConfigError):
            parse_settings(["serve", "--write-interval", bad], {})


def test_flags_win_over_environment() -> None:
    """A flag beats its environment variable, including --no-single-room over SALAS_SINGLE_ROOM."""
    env = {
        "SALAS_PORT": "9001",
        "SALAS_SINGLE_ROOM": "1",
        "SALAS_CORS_ORIGINS": "*",
        "SALAS_MESSAGE_RATE": "5",
    }
    argv = ["serve", "--port", "9002", "--no-single-room", "--cors-origins", "http://x.example"]
    _, settings = parse_settings([*argv, "--message-rate", "0"], env)
    assert settings.port == 9002
    assert settings.message_rate == 0
    assert settings.single_room is False
    assert settings.cors_origins == ("http://x.example",)
    _, settings = parse_settings(["serve", "--single-room"], {"SALAS_SINGLE_ROOM": "0"})
    assert settings.single_room is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("on", True),
        ("0", False),
        ("no", False),
        ("", False),
    ],
)
def test_single_room_environment_values(value: str, expected: bool) -> None:
    """SALAS_SINGLE_ROOM accepts 1/true/yes/on and 0/false/no/off/empty."""
    assert parse_settings(["serve"], {"SALAS_SINGLE_ROOM": value})[1].single_room is expected


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], {}, True),
        ([], {"SALAS_RECOVERY": "0"}, False),
        ([], {"SALAS_RECOVERY": "yes"}, True),
        ([], {"SALAS_RECOVERY": " "}, True),  # set but empty: the default
        (["--no-recovery"], {"SALAS_RECOVERY": "1"}, False),
        (["--recovery"], {"SALAS_RECOVERY": "false"}, True),
    ],
)
def test_recovery_flag_and_environment(
    argv: list[str], env: dict[str, str], expected: bool
) -> None:
    """Recovery is on by default; --recovery/--no-recovery beat SALAS_RECOVERY."""
    assert parse_settings(["serve", *argv], env)[1].recovery is expected


def test_cors_star_and_empty() -> None:
    """'*' allows any origin; an empty value means none."""
    assert parse_settings(["serve", "--cors-origins", "*"], {})[1].cors_origins == "*"
    assert parse_settings(["serve"], {"SALAS_CORS_ORIGINS": " "})[1].cors_origins is None


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["serve", "--port", "abc"], {}, "--port: 'abc' is not a port number"),
        (["serve", "--port", "65536"], {}, "--port: port 65536 is out of range"),
        (["serve", "--port", "-1"], {}, "--port: '-1' is not a port number"),
        (["serve"], {"SALAS_PORT": "80.5"}, "SALAS_PORT: '80.5' is not a port number"),
        (["serve", "--db", "mysql://x/y"], {}, "--db: unknown store URL scheme 'mysql'"),
        (["serve"], {"SALAS_DB": "memory:"}, "SALAS_DB: malformed store URL"),
        (["serve", "--log-level", "loud"], {}, "--log-level: unknown log level 'loud'"),
        (["serve"], {"SALAS_LOG_LEVEL": "verbose"}, "SALAS_LOG_LEVEL: unknown log level"),
        (["serve"], {"SALAS_SINGLE_ROOM": "maybe"}, "SALAS_SINGLE_ROOM: 'maybe' is not a boolean"),
        (["serve"], {"SALAS_RECOVERY": "sometimes"}, "SALAS_RECOVERY: 'sometimes' is not a"),
        (["serve", "--cors-origins", "ftp://x"], {}, "--cors-origins: 'ftp://x' is not an origin"),
        (["serve"], {"SALAS_CORS_ORIGINS": "example.com"}, "SALAS_CORS_ORIGINS: 'example.com'"),
        (["serve", "--message-rate", "fast"], {}, "--message-rate: 'fast' is not a number"),
        (["serve"], {"SALAS_MESSAGE_RATE": "-1"}, "SALAS_MESSAGE_RATE: '-1' must be 0"),
        (["serve"], {"SALAS_MESSAGE_RATE": "nan"}, "SALAS_MESSAGE_RATE: 'nan' must be 0"),
        (["serve", "--message-burst", "0"], {}, "--message-burst: '0' is not a whole number"),
        (["serve"], {"SALAS_MESSAGE_BURST": "2.5"}, "SALAS_MESSAGE_BURST: '2.5' is not a whole"),
        (["serve", "--workers", "2", "--db", "memory://"], {}, "--workers: a cluster needs a"),
        (["serve", "--db", "memory://"], {"SALAS_WORKERS": "3"}, "SALAS_WORKERS: a cluster needs"),
        (["serve", "--workers", "none"], {}, "--workers: expected a number of processes"),
        (["serve", "--workers", "0", "--redis", "redis://x"], {}, "--workers: expected a"),
        (["serve", "--redis", "http://x"], {}, "--redis: 'http://x' is not a redis://"),
    ],
)
def test_bad_settings_name_their_source(argv: list[str], env: dict[str, str], message: str) -> None:
    """Each bad setting is a ConfigError naming the flag or variable it came from."""
    with pytest.raises(ConfigError) as info:
        parse_settings(argv, env)
    assert str(info.value).startswith(message)


def test_http_hardening_settings() -> None:
    """Timeouts, connection limits and trusted proxies from flags or SALAS_* variables, a
    flag winning, handed to the Server as its keyword arguments."""
    env = {
        "SALAS_TIMEOUT_HEAD": "3",
        "SALAS_TIMEOUT_BODY": "4.5",
        "SALAS_TIMEOUT_KEEP_ALIVE": "2",
        "SALAS_MAX_CONNECTIONS": "0",
        "SALAS_MAX_CONNECTIONS_PER_IP": "50",
        "SALAS_FORWARDED_ALLOW_IPS": "10.0.0.0/8, 127.0.0.1",
    }
    _, settings = parse_settings(["serve", "--max-connections-per-ip", "0"], env)
    assert settings.server_options() == {
        "head_timeout": 3.0,
        "body_timeout": 4.5,
        "keep_alive_timeout": 2.0,
        "max_connections": 0,
        "max_connections_per_ip": 0,
        "forwarded_allow_ips": ("10.0.0.0/8", "127.0.0.1"),
        # the inbound budget, at its defaults here
        "inbound_rate": 100.0,
        "inbound_burst": 1000,
        "inbound_bytes_rate": 1_000_000.0,
        "max_post_packets": 500,
        "write_interval": DEFAULT_WRITE_INTERVAL_MS / 1000,
    }
    defaults = ServeSettings()
    assert (defaults.timeout_head, defaults.timeout_body, defaults.timeout_keep_alive) == (
        10.0,
        10.0,
        5.0,
    )
    assert (defaults.max_connections, defaults.max_connections_per_ip) == (10_000, 1000)
    assert defaults.forwarded_allow_ips == ()


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["serve", "--timeout-head", "0"], {}, "--timeout-head: '0' must be a positive"),
        (["serve"], {"SALAS_TIMEOUT_BODY": "soon"}, "SALAS_TIMEOUT_BODY: 'soon' is not a number"),
        (["serve"], {"SALAS_TIMEOUT_KEEP_ALIVE": "inf"}, "SALAS_TIMEOUT_KEEP_ALIVE: 'inf' must"),
        (["serve", "--max-connections", "-1"], {}, "--max-connections: '-1' is not a whole"),
        (["serve"], {"SALAS_MAX_CONNECTIONS_PER_IP": "many"}, "SALAS_MAX_CONNECTIONS_PER_IP:"),
        (["serve", "--forwarded-allow-ips", "proxy"], {}, "--forwarded-allow-ips: forwarded"),
    ],
)
def test_bad_hardening_settings_name_their_source(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    """A bad timeout, limit or proxy list is a ConfigError naming its flag or variable."""
    with pytest.raises(ConfigError) as info:
        parse_settings(argv, env)
    assert str(info.value).startswith(message)


def test_store_url_makes_sqlite_paths_absolute(tmp_path: Path) -> None:
    """Bare paths and relative sqlite:// URLs become absolute sqlite:/// URLs; others stay."""
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert store_url("salas.db") == f"sqlite://{tmp_path}/salas.db"
        assert store_url("sqlite://rel.db?table=t") == f"sqlite://{tmp_path}/rel.db?table=t"
    finally:
        os.chdir(cwd)
    assert store_url("sqlite:///abs/x.db") == "sqlite:///abs/x.db"
    assert store_url("sqlite:////abs/x.db") == "sqlite:///abs/x.db"
    assert store_url("memory://") == "memory://"
    assert store_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_store_url_leaves_what_it_cannot_resolve() -> None:
    """SQLite's ":memory:", URLs the store will refuse, and an empty sqlite:// stay as given."""
    assert store_url(":memory:") == ":memory:"
    assert store_url(" memory: ") == "memory:"
    assert store_url("sqlite:///x.db?bogus=1") == "sqlite:///x.db?bogus=1"
    assert store_url("sqlite://") == "sqlite://"


def test_version_comes_from_the_package_metadata() -> None:
    """salas.__version__ is the installed distribution's version (pyproject.toml's)."""
    assert __version__ == importlib.metadata.version("salas")


# ---------------------------------------------------------------------------- the process
def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALAS_")}
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    # The official client lives in the repository; the server finds it from the cwd otherwise.
    env["SALAS_CLIENT_DIR"] = str(ROOT / "node_modules" / "socket.io-client" / "dist")
    env.update(extra)
    return env


async def _run(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "salas",
        *args,
        cwd=cwd,
        env=env or _env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Served:
    """A running `salas serve` whose stderr is collected."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.match: re.Match[str] | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        assert self.match is not None
        return f"http://127.0.0.1:{self.match['port']}"

    async def wait_listening(self) -> None:
        assert self.proc.stderr is not None

        async def read() -> None:
            assert self.proc.stderr is not None
            while line := await self.proc.stderr.readline():
                self.lines.append(line.decode().rstrip("\n"))

        self._reader = asyncio.ensure_future(read())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while self.match is None:
            for line in self.lines:
                if found := LISTENING.search(line):
                    self.match = found
            if self.proc.returncode is not None or loop.time() > deadline:
                raise AssertionError("salas serve did not start:\n" + "\n".join(self.lines))
            await asyncio.sleep(0.02)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError("salas serve did not stop:\n" + "\n".join(self.lines)) from None
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return code


@asynccontextmanager
async def serving(*args: str, cwd: Path, **env: str) -> AsyncIterator[Served]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "salas",
        "serve",
        "--port",
        "0",
        *args,
        cwd=cwd,
        env=_env(**env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    served = Served(proc)
    try:
        await served.wait_listening()
        yield served
    finally:
        if proc.returncode is None:
            await served.stop()


async def _client(url: str, name: str) -> tuple[socketio.AsyncClient, list[tuple[str, Any]]]:
    events: list[tuple[str, Any]] = []
    sio = socketio.AsyncClient(reconnection=False)

    @sio.on("*")
    async def record(event: str, *args: Any) -> None:
        events.append((event, args[0] if args else None))

    await sio.connect(url, auth={"name": name}, transports=["websocket"], wait_timeout=5)
    return sio, events


async def test_version() -> None:
    """`python -m salas --version` prints the version and exits 0."""
    code, out, err = await _run("--version")
    assert (code, out.strip(), err) == (0, f"salas {__version__}", "")


async def test_console_script_version() -> None:
    """The installed `salas` console script is the same program."""
    script = Path(sys.executable).parent / "salas"
    assert script.exists(), "pip install -e . installs the salas console script"
    proc = await asyncio.create_subprocess_exec(
        str(script), "--version", stdout=asyncio.subprocess.PIPE, env=_env()
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0 and out.decode().strip() == f"salas {__version__}"


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["serve", "--port", "abc"], {}),
        (["serve"], {"SALAS_PORT": "99999"}),
        (["serve", "--db", "foo://bar"], {}),
        (["serve"], {"SALAS_LOG_LEVEL": "chatty"}),
        (["serve", "--no-such-flag"], {}),
        (["serve", "--workers", "2", "--db", "memory://"], {}),
        ([], {}),
    ],
)
async def test_bad_config_exits_2_with_one_line(args: list[str], env: dict[str, str]) -> None:
    """Bad configuration: exit code 2, one clear line on stderr, no traceback, nothing served."""
    code, out, err = await _run(*args, env=_env(**env))
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("salas: error: ") and "Traceback" not in err


async def test_unusable_port_exits_1(tmp_path: Path) -> None:
    """A port already taken: one line saying so, exit code 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await _run(
            "serve", "--port", str(port), "--db", "memory://", env=_env(), cwd=tmp_path
        )
    assert code == 1
    assert f"salas: error: cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


async def test_serve_logs_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    """serve logs one line with the URL, store and mode; /healthz answers; SIGTERM exits 0
    after closing connections."""
    async with serving(cwd=tmp_path) as served:
        assert served.match is not None
        assert served.match["host"] == "127.0.0.1"
        assert served.match["store"] == f"sqlite://{tmp_path}/salas.db"  # the default db
        assert served.match["single"] == "off"
        assert served.match["recovery"] == "on"
        async with aiohttp.ClientSession() as session, session.get(served.url + "/healthz") as r:
            assert r.status == 200
            body = await r.json()
        assert body == {"ok": True, "store": {"ok": True}, "connections": 0}  # no file path
        sio, _ = await _client(served.url, "ana")
        assert await served.stop(signal.SIGTERM) == 0
        await asyncio.sleep(0.2)
        assert not sio.connected
    assert (tmp_path / "salas.db").exists()
    assert sum("listening on" in line for line in served.lines) == 1
    assert any("stopped" in line for line in served.lines)
    assert not any("Traceback" in line for line in served.lines)


async def test_listening_line_shown_at_warning_level(tmp_path: Path) -> None:
    """--log-level warning hides INFO logs but not the line with the bound address."""
    async with serving("--db", "memory://", "--log-level", "warning", cwd=tmp_path) as served:
        assert served.match is not None and int(served.match["port"]) > 0
        async with aiohttp.ClientSession() as session, session.get(served.url + "/healthz") as r:
            assert r.status == 200
        assert await served.stop(signal.SIGTERM) == 0
    assert not any("stopped" in line for line in served.lines)  # INFO stays hidden


async def test_sigint_exits_0(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) is a clean shutdown too."""
    async with serving("--db", "memory://", cwd=tmp_path) as served:
        assert await served.stop(signal.SIGINT) == 0


async def test_environment_configures_serve(tmp_path: Path) -> None:
    """SALAS_SINGLE_ROOM, SALAS_DB and the message rate limit reach the running chat."""
    async with serving(
        cwd=tmp_path,
        SALAS_SINGLE_ROOM="true",
        SALAS_DB="memory://",
        SALAS_LOG_LEVEL="debug",
        SALAS_MESSAGE_BURST="3",  # the join, then two messages
        SALAS_MESSAGE_RATE="0.01",
    ) as served:
        assert served.match is not None
        assert served.match["single"] == "on" and served.match["store"] == "memory://"
        sio, events = await _client(served.url, "ana")
        try:
            await asyncio.sleep(0.2)
            assert events[0] == (
                "welcome",
                {
                    "name": "ana",
                    "single_room": True,
                    "rooms": [],
                    "recovered": False,
                    "channels": [],
                    "user_id": events[0][1]["user_id"],
                    "role": "member",
                    "auth": False,
                    "nick_allowed": True,
                },
            )
            await sio.call("channel_join", "r", timeout=5)
            replies = [await sio.call("message", f"m{i}", timeout=5) for i in range(3)]
            assert [r["ok"] for r in replies] == [True, True, False]
            assert replies[2]["error"]["code"] == "rate_limited"
        finally:
            await sio.disconnect()


async def test_history_survives_restart_on_sqlite(tmp_path: Path) -> None:
    """A message acked by `salas serve` on SQLite is in `history` after SIGTERM and a restart."""
    db = tmp_path / "chat.db"
    async with serving("--db", str(db), cwd=tmp_path) as served:
        sio, ana_events = await _client(served.url, "ana")
        await sio.call("channel_join", "room1", timeout=5)
        sent = await sio.call("message", "¿sobrevive?", timeout=5)
        ana_id = next(data["user_id"] for event, data in ana_events if event == "welcome")
        assert sent["ok"] is True
        await sio.disconnect()
        assert await served.stop() == 0
    async with serving("--db", str(db), cwd=tmp_path) as served:
        sio, _ = await _client(served.url, "bob")
        try:
            history = await sio.call("history", {"channel": "room1"}, timeout=5)
            joined = await sio.call("channel_join", "room1", timeout=5)
        finally:
            await sio.disconnect()
    expected = {
        "id": sent["id"],
        "ts": sent["ts"],
        "channel": "room1",
        "message": "¿sobrevive?",
        "user": "ana",
        "user_id": ana_id,
    }
    assert history["messages"] == [expected]
    assert joined["messages"] == [expected]


@pytest.mark.parametrize("flag", ["--recovery", "--no-recovery"])
async def test_recovery_flag_reaches_serve(tmp_path: Path, flag: str) -> None:
    """With recovery a broadcast `message` ends with its offset as an extra string argument
    for a client that asks for offsets; --no-recovery removes it."""
    async with serving("--db", "memory://", flag, cwd=tmp_path) as served:
        assert served.match is not None
        assert served.match["recovery"] == ("on" if flag == "--recovery" else "off")
        sio = socketio.AsyncClient(reconnection=False)
        got: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

        @sio.on("message")
        async def on_message(*args: Any) -> None:
            await got.put(args)

        await sio.connect(
            served.url, auth={"offsets": "trailing"}, transports=["websocket"], wait_timeout=5
        )
        try:
            await sio.call("channel_join", "r", timeout=5)
            ack = await sio.call("message", "hola", timeout=5)
            args = await asyncio.wait_for(got.get(), 5)
        finally:
            await sio.disconnect()
    assert args[0]["id"] == ack["id"]
    if flag == "--recovery":
        assert len(args) == 2 and isinstance(args[1], str) and int(args[1]) > 0
    else:
        assert len(args) == 1


async def test_connection_limit_and_origin_reach_serve(tmp_path: Path) -> None:
    """--max-connections-per-ip and the same-origin check are in force in `salas serve`."""
    async with serving(
        "--db", "memory://", "--max-connections-per-ip", "1", cwd=tmp_path
    ) as served:
        assert served.match is not None
        port = int(served.match["port"])
        held = await asyncio.open_connection("127.0.0.1", port)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 429 ")
        writer.close()
        held[1].close()
        await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as session:
            target = served.url + "/socket.io/?EIO=4&transport=polling"
            async with session.get(target, headers={"Origin": "http://evil.example"}) as r:
                assert r.status == 403
            async with session.get(target, headers={"Origin": served.url}) as r:
                assert r.status == 200


# ------------------------------------------------------------------ /healthz details
@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], {}, False),
        (["--healthz-details"], {}, True),
        ([], {"SALAS_HEALTHZ_DETAILS": "1"}, True),
        (["--no-healthz-details"], {"SALAS_HEALTHZ_DETAILS": "yes"}, False),
    ],
)
def test_healthz_details_flag_and_environment(
    argv: list[str], env: dict[str, str], expected: bool
) -> None:
    """--healthz-details / SALAS_HEALTHZ_DETAILS turn the details on (off by default)."""
    assert parse_settings(["serve", *argv], env)[1].healthz_details is expected


async def test_healthz_details_reach_serve(tmp_path: Path) -> None:
    """With --healthz-details, the running server's /healthz shows the SQLite file."""
    async with serving("--healthz-details", cwd=tmp_path) as served:
        async with aiohttp.ClientSession() as session, session.get(served.url + "/healthz") as r:
            body = await r.json()
        assert body["store"]["backend"] == "sqlite"
        assert body["store"]["path"] == f"{tmp_path}/salas.db"


# ------------------------------------------------------------------ passwords never shown
SECRET = "hunter2secret"


@pytest.mark.parametrize(
    "db",
    [
        f"postgresql://salas:{SECRET}@127.0.0.1:1/chat",
        f"postgresql://salas@127.0.0.1:1/chat?password={SECRET}",
        f"postgresql://salas@127.0.0.1:1/chat?sslmode=disable&sslpassword={SECRET}",
    ],
)
async def test_unreachable_store_error_hides_the_password(tmp_path: Path, db: str) -> None:
    """A PostgreSQL URL that cannot be reached: exit 1, and its password (userinfo or
    ?password=) appears nowhere in the output."""
    code, out, err = await _run("serve", "--port", "0", "--db", db, cwd=tmp_path)
    assert code == 1
    assert "cannot open the store" in err
    assert SECRET not in out + err
    assert "***" in err


@pytest.mark.parametrize("where", ["userinfo", "query"])
async def test_startup_line_hides_the_password(
    tmp_path: Path, postgres_url: str, where: str
) -> None:
    """The listening line shows the store URL without its password (userinfo or ?password=)."""
    scheme, _, rest = postgres_url.partition("://")
    user, _, host = rest.partition("@")
    if where == "userinfo":
        db = f"{scheme}://{user}:{SECRET}@{host}"
    else:
        db = f"{postgres_url}{'&' if '?' in postgres_url else '?'}password={SECRET}"
    db += ("&" if "?" in db else "?") + "table=redact_test"
    async with serving("--db", db, "--log-level", "info", cwd=tmp_path) as served:
        assert served.match is not None
        assert "***" in served.match["store"]
        assert await served.stop(signal.SIGTERM) == 0
    assert SECRET not in "\n".join(served.lines)


# ------------------------------------------------------------------------------ log format
def test_log_format_flag_and_environment() -> None:
    """--log-format / SALAS_LOG_FORMAT choose text (the default) or json; the flag wins."""
    assert parse_settings(["serve"], {})[1].log_format == "text"
    assert parse_settings(["serve", "--log-format", "json"], {})[1].log_format == "json"
    assert parse_settings(["serve"], {"SALAS_LOG_FORMAT": "JSON"})[1].log_format == "json"
    flag_wins = parse_settings(["serve", "--log-format", "text"], {"SALAS_LOG_FORMAT": "json"})
    assert flag_wins[1].log_format == "text"


# ------------------------------------------------------------------------- identity settings
def test_identity_settings_from_flags_and_environment(tmp_path: Path) -> None:
    """The token auth, private rooms and nick settings come from flags or SALAS_* variables."""
    _, off = parse_settings(["serve"], {})
    assert (off.auth, off.jwt_secret, off.private_rooms, off.allow_nick) == (False, None, (), False)
    assert off.token_verifier() is None
    argv = ["serve", "--jwt-secret", JWT_SECRET, "--jwt-issuer", "me", "--jwt-audience", "chat"]
    argv += ["--private-rooms", "staff-*, ops,", "--allow-nick"]
    _, on = parse_settings(argv, {})
    assert on.auth and on.private_rooms == ("staff-*", "ops") and on.allow_nick
    verifier = on.token_verifier()
    assert verifier is not None and verifier.algorithm == "HS256"
    assert (verifier.issuer, verifier.audience) == ("me", "chat")
    env = {
        "SALAS_JWT_SECRET": JWT_SECRET,
        "SALAS_PRIVATE_ROOMS": "ops",
        "SALAS_ALLOW_NICK": "yes",
        "SALAS_JWT_ISSUER": "them",
    }
    _, from_env = parse_settings(["serve"], env)
    assert from_env.jwt_secret == JWT_SECRET and from_env.private_rooms == ("ops",)
    assert from_env.allow_nick and from_env.jwt_issuer == "them"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["serve", "--log-format", "xml"], {}, "--log-format: unknown log format 'xml'"),
        (["serve"], {"SALAS_LOG_FORMAT": "logfmt"}, "SALAS_LOG_FORMAT: unknown log format"),
    ],
)
def test_bad_log_format_names_its_source(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    """An unknown log format is a ConfigError naming the flag or variable."""
    with pytest.raises(ConfigError) as info:
        parse_settings(argv, env)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["serve", "--jwt-secret", "short"], {}, "--jwt-secret: the JWT secret must be at least"),
        (
            ["serve", "--jwt-secret", JWT_SECRET],
            {"SALAS_JWT_PUBLIC_KEY": "/nope.pem"},
            "--jwt-secret and --jwt-public-key: give one",
        ),
        (["serve", "--jwt-public-key", "/no/such/key.pem"], {}, "--jwt-public-key: cannot read"),
        (["serve"], {"SALAS_ALLOW_NICK": "perhaps"}, "SALAS_ALLOW_NICK: 'perhaps' is not a"),
    ],
)
def test_bad_identity_settings(argv: list[str], env: dict[str, str], message: str) -> None:
    """A short secret, both kinds of key, an unreadable key file: a ConfigError that says so."""
    with pytest.raises(ConfigError) as info:
        parse_settings(argv, env)
    assert str(info.value).startswith(message)


async def test_serve_logs_json_lines(tmp_path: Path) -> None:
    """`salas serve --log-format json`: every line it writes, from start to stop, is one
    JSON object with ts, level, logger and message."""
    async with serving("--db", "memory://", "--log-format", "json", cwd=tmp_path) as served:
        assert await served.stop(signal.SIGTERM) == 0
    entries = [json.loads(line) for line in served.lines]
    assert all({"ts", "level", "logger", "message"} <= entry.keys() for entry in entries)
    messages = [entry["message"] for entry in entries]
    assert any(LISTENING.fullmatch(message) for message in messages)
    assert "salas chat stopped" in messages
    assert {entry["logger"] for entry in entries} >= {"salas.chat"}


async def test_serve_logs_text_by_default(tmp_path: Path) -> None:
    """Without --log-format, lines are text as before: time, level, logger: message."""
    async with serving("--db", "memory://", cwd=tmp_path) as served:
        assert await served.stop(signal.SIGTERM) == 0
    line = next(line for line in served.lines if LISTENING.search(line))
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO salas\.chat: salas chat ", line)


# ------------------------------------------------------------------------ the HTTP publish API
API_TOKEN = "cli-api-token-0123456789"


def test_api_token_flag_and_environment() -> None:
    """--api-token / SALAS_API_TOKEN set the API token (the flag wins; empty: off), never
    shown in the settings' repr; a weak one is refused naming its source."""
    assert parse_settings(["serve"], {})[1].api_token is None
    assert parse_settings(["serve"], {"SALAS_API_TOKEN": ""})[1].api_token is None
    env = {"SALAS_API_TOKEN": API_TOKEN}
    settings = parse_settings(["serve"], env)[1]
    assert settings.api_token == API_TOKEN and API_TOKEN not in repr(settings)
    flag = parse_settings(["serve", "--api-token", API_TOKEN + "-flag"], env)[1]
    assert flag.api_token == API_TOKEN + "-flag"
    with pytest.raises(ConfigError, match=r"^SALAS_API_TOKEN: .*16") as refused:
        parse_settings(["serve"], {"SALAS_API_TOKEN": "short-secret"})
    assert "short-secret" not in str(refused.value)
    with pytest.raises(ConfigError, match=r"^--api-token: "):
        parse_settings(["serve", "--api-token", "with spaces in the token"], {})


async def test_api_token_reaches_serve(tmp_path: Path) -> None:
    """`salas serve --api-token`: the API answers with the token, 401 without, and what it
    posts is in the room's history; without the flag /api is a 404."""
    async with serving("--db", "memory://", "--api-token", API_TOKEN, cwd=tmp_path) as served:
        messages = served.url + "/api/rooms/lobby/messages"
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        async with aiohttp.ClientSession() as session:
            async with session.post(messages, json={"message": "from cron"}) as r:
                assert r.status == 401
            async with session.post(messages, json={"message": "from cron"}, headers=headers) as r:
                assert r.status == 201
                posted = await r.json()
            async with session.get(messages, headers=headers) as r:
                body = await r.json()
        assert [(m["id"], m["message"], m["user"]) for m in body["messages"]] == [
            (posted["id"], "from cron", "api")
        ]
        assert API_TOKEN not in "\n".join(served.lines)
    async with serving("--db", "memory://", cwd=tmp_path) as served:
        status = await _status(served.url + "/api/rooms", headers)
        assert status == 404


async def _status(url: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
        return r.status


# ------------------------------------------------------------------------ --admin-ui
def test_admin_ui_setting() -> None:
    """--admin-ui / SALAS_ADMIN_UI: a login; credentials for listed CORS origins, not for *."""
    _, settings = parse_settings(
        ["serve", "--admin-ui", "root:pw:1", "--cors-origins", "https://admin.socket.io"], {}
    )
    assert settings.admin_ui == "root:pw:1"
    assert settings.server_options()["cors_credentials"] is True
    _, settings = parse_settings(["serve", "--cors-origins", "*"], {"SALAS_ADMIN_UI": "a:b"})
    assert settings.admin_ui == "a:b" and "cors_credentials" not in settings.server_options()
    assert parse_settings(["serve"], {"SALAS_ADMIN_UI": ""})[1].admin_ui is None
    with pytest.raises(ConfigError, match="SALAS_ADMIN_UI: expected USER:PASSWORD"):
        parse_settings(["serve"], {"SALAS_ADMIN_UI": "nopassword"})


def test_public_key_file_is_read(tmp_path: Path) -> None:
    """--jwt-public-key FILE reads a PEM public key: an RSA one verifies RS256."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    _, settings = parse_settings(["serve", "--jwt-public-key", str(pem)], {})
    verifier = settings.token_verifier()
    assert verifier is not None and verifier.algorithm == "RS256"


async def test_identity_warnings_at_startup(tmp_path: Path) -> None:
    """Without auth, a non-loopback host and private-room patterns each get one WARNING;
    with auth neither appears and the listening line says which algorithm."""
    args = ("--db", "memory://", "--host", "0.0.0.0", "--private-rooms", "ops")
    async with serving(*args, cwd=tmp_path) as served:
        assert served.match is not None and served.match["auth"] == "off"
        assert await served.stop() == 0
    warnings = [line for line in served.lines if "WARNING" in line]
    assert sum("everyone who reaches this server can post as anyone" in w for w in warnings) == 1
    assert sum("private rooms cannot be entered without auth" in w for w in warnings) == 1
    async with serving(*args, "--jwt-secret", JWT_SECRET, cwd=tmp_path) as served:
        assert served.match is not None and served.match["auth"] == "HS256"
        assert await served.stop() == 0
    assert not any("WARNING" in line for line in served.lines)


# -- cluster (--redis, --redis-prefix) ----------------------------------------------------------
def test_redis_flag_environment_and_prefix() -> None:
    """--redis / SALAS_REDIS and --redis-prefix are read; the default prefix hashes the store
    URL (without its credentials), so two chats on one Redis do not mix."""
    from salas.cli import cluster_prefix

    db = "postgresql://u:secret@127.0.0.1/test"
    _, settings = parse_settings(["serve", "--db", db], {"SALAS_REDIS": "redis://127.0.0.1:6379/0"})
    assert settings.redis == "redis://127.0.0.1:6379/0" and settings.redis_prefix is None
    prefix = cluster_prefix(settings, db)
    assert prefix.startswith("salas:") and "secret" not in prefix
    assert prefix == cluster_prefix(settings, "postgresql://u:other@127.0.0.1/test")
    assert prefix != cluster_prefix(settings, db + "?schema=other")
    _, named = parse_settings(
        ["serve", "--db", db, "--redis", "redis://h:6379/0", "--redis-prefix", "chat-a"], {}
    )
    assert cluster_prefix(named, db) == "chat-a"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--redis", "http://h:6379"], "not a redis://"),
        (["--redis-prefix", "x"], "needs --redis"),
        (["--redis", "redis://h:6379/0", "--db", "memory://"], "not memory://"),
        (["--redis", "redis://h:6379/0", "--redis-prefix", "a b"], "no spaces"),
    ],
)
def test_redis_settings_refused(argv: list[str], message: str) -> None:
    """A URL that is not Redis's, a prefix without --redis, a cluster on memory:// or a bad
    prefix: a configuration error naming the flag."""
    with pytest.raises(ConfigError, match=message):
        parse_settings(["serve", *argv], {})


def test_workers_setting_from_flags_and_environment() -> None:
    """--workers / SALAS_WORKERS ("auto": the cores); more than one without --redis share the
    parent's local hub (no Redis URL in the settings), still not with --redis-prefix alone."""
    _, settings = parse_settings(["serve"], {})
    assert (settings.workers, settings.redis, settings.worker) == (1, None, None)
    env = {"SALAS_WORKERS": "auto", "SALAS_REDIS": "redis://127.0.0.1:6379/0"}
    _, settings = parse_settings(["serve", "--db", "chat.db"], env)
    assert settings.workers == (os.cpu_count() or 1)
    assert settings.redis == "redis://127.0.0.1:6379/0"
    _, flag = parse_settings(["serve", "--db", "chat.db", "--workers", "2"], env)
    assert flag.workers == 2
    _, hub = parse_settings(["serve", "--workers", "2"], {})
    assert (hub.workers, hub.redis, hub.redis_prefix) == (2, None, None)
    with pytest.raises(ConfigError, match="needs --redis"):
        parse_settings(["serve", "--workers", "2", "--redis-prefix", "x"], {})

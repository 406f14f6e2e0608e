"""salas.admin: the Admin UI's protocol, spoken to python-socketio clients on /admin."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import socketio

from salas import Server, Socket
from salas.admin import (
    INVALID_CREDENTIALS,
    MAX_FAILURES,
    TOO_MANY_ATTEMPTS,
    AdminUI,
    instrument,
    parse_credentials,
)

HOST = "127.0.0.1"
CREDENTIALS = {"username": "admin", "password": "s3cret"}
ACTIONS = {"EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"}


class Dashboard:
    """A python-socketio client on /admin, keeping every event it gets, in order."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()

        async def any_event(event: str, *args: Any) -> None:
            await self.events.put((event, args))

        self.sio.on("*", any_event, namespace="/admin")
        self.errors: list[Any] = []
        self.sio.on("connect_error", self.errors.append, namespace="/admin")

    async def connect(self, port: int, auth: dict[str, Any]) -> None:
        await self.sio.connect(
            f"http://{HOST}:{port}",
            namespaces=["/admin"],
            auth=auth,
            transports=["websocket"],
            wait_timeout=5,
        )

    async def next(self, event: str, timeout: float = 5.0, **match: Any) -> tuple[Any, ...]:
        """The arguments of the next `event` (others are skipped); with `match`, the next
        whose first argument's items (a dict) or arguments by position name agree."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            name, args = await asyncio.wait_for(self.events.get(), deadline - loop.time())
            if name != event:
                continue
            if "where" in match and not match["where"](args):
                continue
            return args


@pytest.fixture
async def served() -> AsyncIterator[Callable[..., Awaitable[tuple[Server, AdminUI, int]]]]:
    """`await served(**instrument_options)`: a started Server with the admin UI, its port."""
    servers: list[Server] = []

    async def make(**options: Any) -> tuple[Server, AdminUI, int]:
        io = Server(serve_client=False)
        options.setdefault("auth", CREDENTIALS)
        options.setdefault("stats_interval", 0.2)
        admin = instrument(io, **options)

        @io.on("connection")
        def connection(socket: Socket) -> None:
            socket.on("join", socket.join)
            socket.on("leave", socket.leave)
            socket.on("echo", lambda text: socket.emit("echoed", text))

        servers.append(io)
        return io, admin, await io.start(HOST, 0)

    yield make
    for io in servers:
        await io.shutdown()


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[], socketio.AsyncClient]]:
    """`clients()`: python-socketio clients, disconnected afterwards."""
    made: list[socketio.AsyncClient] = []

    def make() -> socketio.AsyncClient:
        made.append(socketio.AsyncClient(reconnection=False))
        return made[-1]

    yield make
    for c in made:
        await c.disconnect()


async def refusal(port: int, auth: dict[str, Any]) -> str:
    """The message a dashboard logging in with `auth` is refused with."""
    dashboard = Dashboard()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await dashboard.connect(port, auth)
    await dashboard.sio.disconnect()
    (error,) = dashboard.errors
    return str(error["message"])


async def connect_dashboard(port: int, auth: dict[str, Any] | None = None) -> Dashboard:
    dashboard = Dashboard()
    await dashboard.connect(port, CREDENTIALS if auth is None else auth)
    return dashboard


async def test_wrong_password_is_refused(served) -> None:
    """A wrong password, a wrong user or no auth at all: refused with "invalid credentials"."""
    _io, _admin, port = await served()
    for auth in (
        {"username": "admin", "password": "nope"},
        {"username": "x", "password": "s3cret"},
        {},
    ):
        assert await refusal(port, auth) == INVALID_CREDENTIALS


async def test_login_gets_session_config_and_all_sockets(served, clients) -> None:
    """The right credentials get a session id, the features and every socket with its rooms."""
    _io, _admin, port = await served()
    user = clients()
    await user.connect(f"http://{HOST}:{port}", transports=["websocket"])
    await user.call("join", "lobby")
    dashboard = await connect_dashboard(port)
    (session_id,) = await dashboard.next("session")
    assert isinstance(session_id, str) and len(session_id) >= 32
    (config,) = await dashboard.next("config")
    assert set(config["supportedFeatures"]) == ACTIONS | {"AGGREGATED_EVENTS", "ALL_EVENTS"}
    (sockets,) = await dashboard.next("all_sockets")
    by_id = {s["id"]: s for s in sockets}
    mine = by_id[user.get_sid("/")]
    assert mine["nsp"] == "/" and mine["transport"] == "websocket"
    assert sorted(mine["rooms"]) == sorted([mine["id"], "lobby"])
    assert mine["handshake"]["address"] == HOST
    assert "issued" in mine["handshake"] and len(mine["clientId"]) == 12
    assert any(s["nsp"] == "/admin" for s in sockets)  # the dashboard sees itself too
    await dashboard.sio.disconnect()
    # The session id lets it back in without the password (what a reloaded dashboard does).
    again = await connect_dashboard(port, {"sessionId": session_id})
    await again.next("config")
    await again.sio.disconnect()
    assert await refusal(port, {"sessionId": "0" * 32}) == INVALID_CREDENTIALS


async def test_socket_life_is_reported(served, clients) -> None:
    """Connect, join, an event in and out, leave and disconnect reach the dashboard."""
    _io, _admin, port = await served()
    dashboard = await connect_dashboard(port)
    await dashboard.next("all_sockets")
    user = clients()
    await user.connect(f"http://{HOST}:{port}", transports=["websocket"])
    sid = user.get_sid("/")
    (socket, stamp) = await dashboard.next("socket_connected", where=lambda a: a[0]["nsp"] == "/")
    assert socket["id"] == sid and socket["rooms"] == [sid]
    assert stamp.endswith("Z")
    await user.call("join", "lobby")
    # The event is reported as it arrives, before its handler joins the room.
    args = await dashboard.next("event_received", where=lambda a: a[2][0] == "join")
    assert args[:3] == ("/", sid, ["join", "lobby"])
    args = await dashboard.next("room_joined", where=lambda a: a[1] == "lobby")
    assert args[:3] == ("/", "lobby", sid)
    await user.emit("echo", "hi")
    args = await dashboard.next("event_sent")
    assert args[:3] == ("/", sid, ["echoed", "hi"])
    await user.call("leave", "lobby")
    args = await dashboard.next("room_left", where=lambda a: a[1] == "lobby")
    assert args[:3] == ("/", "lobby", sid)
    await user.disconnect()
    args = await dashboard.next("socket_disconnected", where=lambda a: a[1] == sid)
    assert args[:2] == ("/", sid)
    assert args[2] in ("client namespace disconnect", "transport close")
    await dashboard.sio.disconnect()


async def test_server_stats_are_periodic(served, clients) -> None:
    """server_stats arrives again and again, with clients, namespaces and connection counts."""
    _io, admin, port = await served(server_id="node-a")
    user = clients()
    dashboard = await connect_dashboard(port)
    await user.connect(f"http://{HOST}:{port}", transports=["websocket"])
    loop = asyncio.get_running_loop()
    (first,) = await dashboard.next("server_stats")
    started = loop.time()
    seen = [first]
    while len(seen) < 3:
        seen.append((await dashboard.next("server_stats"))[0])
    assert loop.time() - started < 3.0  # every 0.2 s here; 2 s by default
    last = seen[-1]
    assert last["serverId"] == "node-a" and isinstance(last["pid"], int)
    assert last["clientsCount"] == 2 and last["pollingClientsCount"] == 0
    assert {"name": "/", "socketsCount": 1} in last["namespaces"]
    assert {"name": "/admin", "socketsCount": 1} in last["namespaces"]
    events = [e for stats in seen for e in stats["aggregatedEvents"]]
    assert any(e["type"] == "rawConnection" for e in events)
    assert admin.server_stats()["clientsCount"] == 2
    await dashboard.sio.disconnect()


async def test_disconnect_join_and_leave_actions(served, clients) -> None:
    """_disconnect, join and leave act on the socket or room the dashboard names."""
    io, _admin, port = await served()
    user, bystander = clients(), clients()
    gone = asyncio.Event()
    user.on("disconnect", lambda *reason: gone.set())
    for c in (user, bystander):
        await c.connect(f"http://{HOST}:{port}", transports=["websocket"])
    sid = user.get_sid("/")
    dashboard = await connect_dashboard(port)
    await dashboard.next("all_sockets")
    await dashboard.sio.emit("join", ("/", "picked", sid), namespace="/admin")
    await dashboard.next("room_joined", where=lambda a: a[1] == "picked")
    assert io.sockets.adapter.room_members("picked") == {sid}
    await dashboard.sio.emit("leave", ("/", "picked", sid), namespace="/admin")
    await dashboard.next("room_left", where=lambda a: a[1] == "picked")
    await dashboard.sio.emit("_disconnect", ("/", False, sid), namespace="/admin")
    await asyncio.wait_for(gone.wait(), 5)
    await dashboard.next("socket_disconnected", where=lambda a: a[1] == sid)
    assert bystander.connected and bystander.get_sid("/") in io.sockets.sockets
    await dashboard.sio.disconnect()


async def test_actions_with_bad_arguments_are_ignored(served, clients) -> None:
    """Actions naming no namespace, an unknown one or odd types change nothing, break nothing."""
    io, _admin, port = await served()
    user = clients()
    await user.connect(f"http://{HOST}:{port}", transports=["websocket"])
    dashboard = await connect_dashboard(port)
    for event, args in [
        ("_disconnect", ("/nowhere", True, None)),
        ("_disconnect", (None, True)),
        ("join", ("/", ["not", "a", "room"])),
        ("join", ("/", "x", {"odd": "filter"})),
        ("leave", (1, 2, 3)),
        ("emit", ("/", None, "disconnect")),
        ("emit", ("/", None, None, "x")),
    ]:
        await dashboard.sio.emit(event, args, namespace="/admin")
    await dashboard.next("server_stats")
    await dashboard.next("server_stats")
    assert "/nowhere" not in io.namespaces and user.connected
    assert io.sockets.adapter.socket_rooms(user.get_sid("/")) == {user.get_sid("/")}
    await dashboard.sio.disconnect()


async def test_read_only_offers_and_accepts_no_action(served, clients) -> None:
    """read_only: no action in the features, and a _disconnect is ignored."""
    _io, _admin, port = await served(read_only=True)
    user = clients()
    await user.connect(f"http://{HOST}:{port}", transports=["websocket"])
    dashboard = await connect_dashboard(port)
    (config,) = await dashboard.next("config")
    assert set(config["supportedFeatures"]) == {"AGGREGATED_EVENTS", "ALL_EVENTS"}
    await dashboard.sio.emit("_disconnect", ("/", True, None), namespace="/admin")
    await dashboard.next("server_stats")
    await dashboard.next("server_stats")
    assert user.connected
    await dashboard.sio.disconnect()


async def test_production_mode_sends_statistics_only(served, clients) -> None:
    """Production mode: no all_sockets and no socket events, but server_stats."""
    _io, _admin, port = await served(mode="production")
    dashboard = await connect_dashboard(port)
    (config,) = await dashboard.next("config")
    assert "ALL_EVENTS" not in config["supportedFeatures"]
    user = clients()
    await user.connect(f"http://{HOST}:{port}", transports=["websocket"])
    await dashboard.next("server_stats")
    await dashboard.next("server_stats")
    names = set()
    while not dashboard.events.empty():
        names.add(dashboard.events.get_nowait()[0])
    assert names <= {"server_stats"}
    await dashboard.sio.disconnect()


async def test_failed_logins_are_limited_per_address(served) -> None:
    """After MAX_FAILURES wrong passwords even the right one is refused for a while."""
    _io, _admin, port = await served()
    for _ in range(MAX_FAILURES):
        assert (
            await refusal(port, {"username": "admin", "password": "guess"}) == INVALID_CREDENTIALS
        )
    assert await refusal(port, CREDENTIALS) == TOO_MANY_ATTEMPTS


async def test_hostile_auth_objects_are_refused(served) -> None:
    """Odd types and huge strings as credentials are refused; the right login still works."""
    _io, _admin, port = await served()
    for auth in (
        {"username": ["admin"], "password": "s3cret"},
        {"username": "admin", "password": {"$ne": ""}},
        {"username": "admin", "password": "s3cret" * 100_000},
        {"sessionId": ["x"], "username": None},
    ):
        assert await refusal(port, auth) == INVALID_CREDENTIALS
    dashboard = await connect_dashboard(port)
    await dashboard.next("config")
    await dashboard.sio.disconnect()


async def test_bcrypt_hashed_password(served) -> None:
    """A bcrypt hash as the password (as the Node package wants) checks the plain password."""
    bcrypt = pytest.importorskip("bcrypt")
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    _io, _admin, port = await served(auth={"username": "admin", "password": hashed})
    dashboard = await connect_dashboard(port)
    await dashboard.next("config")
    await dashboard.sio.disconnect()
    assert await refusal(port, {"username": "admin", "password": "x" * 100}) == INVALID_CREDENTIALS


async def test_callable_auth(served) -> None:
    """An async callable decides on the dashboard's auth object."""

    async def check(auth: dict[str, Any]) -> bool:
        return auth.get("token") == "t0k"

    _io, _admin, port = await served(auth=check)
    dashboard = await connect_dashboard(port, {"token": "t0k"})
    await dashboard.next("config")
    await dashboard.sio.disconnect()
    assert await refusal(port, {"token": "nope"}) == INVALID_CREDENTIALS


def test_bad_settings_are_refused() -> None:
    """Missing or empty credentials, an unknown mode or auth type raise at instrument time."""
    io = Server(serve_client=False)
    with pytest.raises(ValueError, match="empty"):
        instrument(io, auth={"username": "admin", "password": ""})
    with pytest.raises(ValueError, match="mode"):
        instrument(io, auth=False, mode="verbose")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        instrument(io, auth=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        instrument(io)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("admin:pw", {"username": "admin", "password": "pw"}),
        ("admin:p:w", {"username": "admin", "password": "p:w"}),
    ],
)
def test_parse_credentials(text: str, expected: dict[str, str]) -> None:
    """USER:PASSWORD splits at the first colon."""
    assert parse_credentials(text) == expected


@pytest.mark.parametrize("text", ["admin", ":pw", "admin:", ""])
def test_parse_credentials_refuses_incomplete(text: str) -> None:
    """A missing colon, user or password is an error."""
    with pytest.raises(ValueError, match="USER:PASSWORD"):
        parse_credentials(text)

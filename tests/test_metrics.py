"""salas.metrics: /metrics in the Prometheus text format, after real traffic."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import socketio
from prometheus_client.parser import text_string_to_metric_families

from salas import Server, Socket
from salas.chat import ChatConfig, create_app
from salas.metrics import ServerMetrics
from salas.store import open_store

HOST = "127.0.0.1"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
async def servers() -> AsyncIterator[list[Server]]:
    """Servers the test starts, shut down afterwards."""
    started: list[Server] = []
    yield started
    for io in started:
        await io.shutdown()


async def relay(servers: list[Server], **options: Any) -> tuple[Server, int]:
    """The tutorial's relay (join a room, message to the room), with metrics on; its port."""
    io = Server(serve_client=False, metrics=True, **options)

    @io.on("connection")
    def connection(socket: Socket) -> None:
        async def join(room: str) -> str:
            await socket.join(room)
            return "ok"

        async def message(text: str) -> None:
            await io.to("lobby").emit("message", {"channel": "lobby", "message": text})

        socket.on("channel_join", join)
        socket.on("message", message)

    servers.append(io)
    return io, await io.start(HOST, 0)


async def scrape(port: int, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """GET /metrics: status, content type, body."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://{HOST}:{port}/metrics", headers=headers or {}) as response,
    ):
        return response.status, response.headers.get("Content-Type", ""), await response.text()


def samples(text: str) -> Samples:
    """Every sample of a scrape by (name, sorted labels), parsed by prometheus_client."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def _result(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


async def values(port: int) -> Samples:
    """The samples of one scrape, which must succeed."""
    status, _, text = await scrape(port)
    assert status == 200
    return samples(text)


async def wait_for(check: Callable[[], Any], timeout: float = 5.0) -> None:
    """Poll `check` (sync, or async) until it is true; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await _result(check()):
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_counters_follow_real_traffic(servers: list[Server]) -> None:
    """Two python-socketio clients (one per transport) join, message and leave: every
    counter and gauge moves by what that traffic amounts to, in text prometheus parses."""
    _, port = await relay(servers)
    before = await values(port)
    assert before[("salas_connections", (("transport", "websocket"),))] == 0
    ws = socketio.AsyncClient(reconnection=False)
    poll = socketio.AsyncClient(reconnection=False)
    got: list[Any] = []
    ws.on("message", got.append)
    poll.on("message", got.append)
    await ws.connect(f"http://{HOST}:{port}", transports=["websocket"])
    await poll.connect(f"http://{HOST}:{port}", transports=["polling"])
    assert await ws.call("channel_join", "lobby", timeout=5) == "ok"
    assert await poll.call("channel_join", "lobby", timeout=5) == "ok"
    during = await values(port)
    assert during[("salas_connections", (("transport", "websocket"),))] == 1
    assert during[("salas_connections", (("transport", "polling"),))] == 1
    assert during[("salas_handshakes_total", (("transport", "websocket"),))] == 1
    assert during[("salas_handshakes_total", (("transport", "polling"),))] == 1
    assert during[("salas_sockets", (("namespace", "/"),))] == 2
    assert during[("salas_rooms", (("namespace", "/"),))] == 1
    assert during[("salas_room_members", (("namespace", "/"),))] == 2
    handled = ("salas_event_handler_seconds_count", (("event", "channel_join"), ("namespace", "/")))
    assert during[handled] == 2

    await ws.emit("message", "one")
    await ws.emit("message", "two")
    await wait_for(lambda: len(got) == 4)
    after = await values(port)
    assert after[("salas_broadcasts_total", (("namespace", "/"),))] == 2
    assert after[("salas_deliveries_total", (("namespace", "/"),))] == 4
    sent = ("salas_event_handler_seconds_count", (("event", "message"), ("namespace", "/")))
    assert after[sent] == 2
    for name in ("packets_received", "packets_sent", "bytes_received", "bytes_sent"):
        moved = after[(f"salas_{name}_total", ())] - during[(f"salas_{name}_total", ())]
        assert moved > 0, name
    # Two messages in, at least four broadcast packets out (plus acks, pings...).
    assert (
        after[("salas_packets_received_total", ())] - during[("salas_packets_received_total", ())]
        >= 2
    )
    assert after[("salas_packets_sent_total", ())] - during[("salas_packets_sent_total", ())] >= 4

    await ws.disconnect()
    await poll.disconnect()

    async def closed() -> bool:
        now = await values(port)
        return sum(v for (n, _), v in now.items() if n == "salas_disconnects_total") == 2

    await wait_for(closed)
    final = await values(port)
    assert final[("salas_connections", (("transport", "websocket"),))] == 0
    assert final[("salas_connections", (("transport", "polling"),))] == 0
    assert final[("salas_rooms", (("namespace", "/"),))] == 0
    assert final[("salas_disconnects_total", (("reason", "transport close"),))] == 2
    assert final[("salas_slow_consumers_total", ())] == 0


async def test_refusals_are_counted(servers: list[Server]) -> None:
    """A cross-site Origin (403) and a connection over max_connections_per_ip (429) are
    counted, and an honest client beside them is not."""
    _, port = await relay(servers, cors_origins="https://chat.example", max_connections_per_ip=2)
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"http://{HOST}:{port}/socket.io/?EIO=4&transport=polling",
            headers={"Origin": "https://evil.example"},
        ) as response:
            assert response.status == 403
        async with http.get(
            f"http://{HOST}:{port}/socket.io/?EIO=4&transport=polling",
            headers={"Origin": "https://chat.example"},
        ) as response:
            assert response.status == 200
    # Two connections held open; a third from the same address is refused.
    held = [await asyncio.open_connection(HOST, port) for _ in range(2)]
    await asyncio.sleep(0.1)
    reader, writer = await asyncio.open_connection(HOST, port)
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 429")
    writer.close()
    for _, w in held:
        w.close()
    await asyncio.sleep(0.1)
    found = await values(port)
    assert found[("salas_origin_refused_total", ())] == 1
    per_ip = ("salas_connections_refused_total", (("limit", "max_connections_per_ip"),))
    assert found[per_ip] == 1
    assert found[("salas_connections_refused_total", (("limit", "max_connections"),))] == 0
    assert found[("salas_handshakes_total", (("transport", "polling"),))] == 1


async def test_token_required_when_set(servers: list[Server]) -> None:
    """With a token: 401 without Authorization or with a wrong one, 200 with the right one."""
    _, port = await relay(servers, metrics_token="s3cret")
    status, _, _ = await scrape(port)
    assert status == 401
    assert (await scrape(port, {"Authorization": "Bearer wrong"}))[0] == 401
    assert (await scrape(port, {"Authorization": "s3cret"}))[0] == 401
    status, content_type, text = await scrape(port, {"Authorization": "Bearer s3cret"})
    assert status == 200 and content_type.startswith("text/plain")
    assert ("salas_connections", (("transport", "polling"),)) in samples(text)


async def test_metrics_off_is_404(servers: list[Server]) -> None:
    """Without metrics there is no /metrics route and no metrics object."""
    io = Server(serve_client=False)
    servers.append(io)
    port = await io.start(HOST, 0)
    assert io.metrics is None
    assert (await scrape(port))[0] == 404


async def test_two_servers_do_not_share_counts(servers: list[Server]) -> None:
    """Each server has its own registry: traffic to one leaves the other's counts at zero."""
    _, port_a = await relay(servers)
    _, port_b = await relay(servers)
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(f"http://{HOST}:{port_a}", transports=["websocket"])
    await sio.call("channel_join", "lobby", timeout=5)
    await sio.disconnect()
    a, b = await values(port_a), await values(port_b)
    assert a[("salas_handshakes_total", (("transport", "websocket"),))] == 1
    assert b[("salas_handshakes_total", (("transport", "websocket"),))] == 0
    assert (
        "salas_event_handler_seconds_count",
        (("event", "channel_join"), ("namespace", "/")),
    ) not in b


async def test_chat_counts_commits_and_rate_limits(tmp_path: Any) -> None:
    """The chat adds its store's commit latency and its event budget's refusals."""
    store = open_store(f"sqlite://{tmp_path}/chat.db")
    await store.open()
    app = create_app(
        ChatConfig(message_rate=1.0, message_burst=2, event_cutoff=0),
        store,
        server_options={"serve_client": False, "metrics": True},
    )
    port = await app.start(HOST, 0)
    sio = socketio.AsyncClient(reconnection=False)
    try:
        await sio.connect(f"http://{HOST}:{port}", transports=["websocket"])
        assert (await sio.call("channel_join", "lobby", timeout=5))["ok"]
        answers = [await sio.call("message", "hi", timeout=5) for _ in range(3)]
        assert answers[0]["ok"] and answers[-1]["error"]["code"] == "rate_limited"
        found = await values(port)
        assert found[("salas_chat_events_rate_limited_total", ())] == 2
        assert found[("salas_store_commit_seconds_count", ())] == 1
        assert found[("salas_store_commit_errors_total", ())] == 0
    finally:
        await sio.disconnect()
        await app.shutdown()
        await store.close()


# Refuses prometheus_client before salas is imported, as an install without the extra would.
_WITHOUT_PROMETHEUS = textwrap.dedent(
    """
    import sys
    from importlib.abc import MetaPathFinder

    class Refuse(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "prometheus_client":
                raise ModuleNotFoundError(f"blocked: {name}", name=name)
            return None

    sys.meta_path.insert(0, Refuse())
    import salas, salas.chat, salas.cli
    salas.Server(serve_client=False)
    try:
        salas.Server(serve_client=False, metrics=True)
    except ImportError as exc:
        print("metrics:", exc)
    """
)


def test_missing_library_names_the_extra() -> None:
    """Without prometheus_client salas imports and serves; metrics=True names the extra."""
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PROMETHEUS], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "metrics: Server(metrics=True) needs the 'metrics' extra: pip install 'salas[metrics]'"
    ]


def test_not_imported_when_off() -> None:
    """A server without metrics never imports prometheus_client, even when installed."""
    code = (
        "import sys, salas, salas.chat, salas.cli; salas.Server(serve_client=False); "
        "print(sorted(m for m in sys.modules if m.startswith('prometheus_client')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_empty_token_refused() -> None:
    """An empty token would protect nothing: refused at construction."""
    with pytest.raises(ValueError, match="token"):
        Server(serve_client=False, metrics=True, metrics_token="")
    assert isinstance(Server(serve_client=False, metrics=True).metrics, ServerMetrics)

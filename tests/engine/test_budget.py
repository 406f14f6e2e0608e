"""Inbound budgets (salas.engine.budget): the bucket maths, and floods over both transports
cut cheaply while an honest client on the same server keeps its replies."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from salas import Server
from salas.engine import EngineConfig
from salas.engine.budget import InboundBudget, TokenBucket

HOST = "127.0.0.1"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- the token bucket ----------------------------------------------------------------------


def test_bucket_burst_then_refused() -> None:
    """A full bucket allows exactly `capacity` actions at once, then refuses."""
    bucket = TokenBucket(20, 10.0, Clock())
    assert [bucket.take() for _ in range(20)] == [True] * 20
    assert bucket.take() is False


def test_bucket_refills_at_rate() -> None:
    """Tokens come back at `rate` per second: 0.1 s at 10/s buys exactly one more action."""
    clock = Clock()
    bucket = TokenBucket(2, 10.0, clock)
    assert bucket.take() and bucket.take()
    assert not bucket.take()
    clock.now += 0.05
    assert not bucket.take()
    clock.now += 0.051
    assert bucket.take()
    assert not bucket.take()


def test_bucket_fractional_cost() -> None:
    """A cost of 0.25 spends a quarter token: four such actions per token."""
    bucket = TokenBucket(1, 1.0, Clock())
    assert [bucket.take(0.25) for _ in range(5)] == [True] * 4 + [False]


def test_bucket_refill_is_capped_at_capacity() -> None:
    """A long quiet spell does not bank more than one burst."""
    clock = Clock()
    bucket = TokenBucket(3, 10.0, clock)
    clock.now += 3600
    assert sum(bucket.take() for _ in range(10)) == 3


def test_bucket_clock_going_backwards_does_not_drain() -> None:
    """A clock that steps back neither refuses a full bucket nor adds tokens."""
    clock = Clock()
    bucket = TokenBucket(2, 1.0, clock)
    clock.now -= 50
    assert bucket.take() and bucket.take()
    assert not bucket.take()


@pytest.mark.parametrize(("capacity", "rate"), [(0, 1.0), (1, 0.0), (5, -1.0)])
def test_bucket_invalid_parameters(capacity: int, rate: float) -> None:
    """A bucket that could never allow anything is a configuration error."""
    with pytest.raises(ValueError):
        TokenBucket(capacity, rate)


# -- the inbound budget --------------------------------------------------------------------


def test_inbound_packets_burst_and_rate() -> None:
    """A burst of packets, then `rate` per second; a batch is admitted whole or not at all."""
    clock = Clock()
    budget = InboundBudget(10.0, 5, 0, 0, clock=clock)
    assert budget.admit(5, 0)
    assert not budget.admit(1, 0)
    clock.now += 0.301  # 3 packets' worth
    assert not budget.admit(4, 0)
    assert budget.admit(3, 0)


def test_inbound_bytes_budget() -> None:
    """Bytes are counted too: a message larger than what is left is refused."""
    clock = Clock()
    budget = InboundBudget(0, 1, 1000.0, 1000, clock=clock)
    assert budget.admit(1, 800)
    assert not budget.admit(1, 300)
    clock.now += 0.1001
    assert budget.admit(1, 299)


def test_inbound_exhausted_after_grace_of_refusals() -> None:
    """A sender still refused `grace` seconds after its first refusal is exhausted."""
    clock = Clock()
    budget = InboundBudget(10.0, 100, 0, 0, grace=2.0, clock=clock)
    assert budget.admit(100, 0)
    admitted = 0
    for _ in range(39):  # 20 packets a second (2x the rate) for ~2 s
        admitted += budget.admit(1, 0)
        clock.now += 0.05
    assert not budget.exhausted()  # the first refusal was at 100.05: not 2 s yet
    assert admitted <= 20 + 1
    clock.now = 102.1
    assert budget.exhausted()


def test_inbound_exhausted_when_a_whole_burst_is_refused() -> None:
    """A flood that overshoots by a whole burst at once is exhausted without waiting for
    `grace` (it may be over long before grace could show it)."""
    clock = Clock()
    budget = InboundBudget(10.0, 50, 0, 0, grace=2.0, clock=clock)
    assert budget.admit(50, 0)
    for _ in range(49):
        assert not budget.admit(1, 0)
    assert not budget.exhausted()
    assert not budget.admit(1, 0)
    assert budget.exhausted()


def test_inbound_one_burst_is_forgiven() -> None:
    """A sender that overshoots once and then slows down ends its run: never exhausted."""
    clock = Clock()
    budget = InboundBudget(10.0, 2, 0, 0, grace=2.0, clock=clock)
    assert budget.admit(2, 0)
    assert not budget.admit(1, 0)  # the run starts
    clock.now += 0.5  # quiet: the bucket refills
    assert budget.admit(1, 0)  # room left for another: the run is over
    clock.now += 5.0
    assert budget.admit(2, 0)
    assert not budget.admit(1, 0)
    assert not budget.exhausted()


def test_inbound_rate_zero_is_unlimited() -> None:
    """A rate of 0 turns that bucket off."""
    budget = InboundBudget(0, 1, 0, 1, clock=Clock())
    assert all(budget.admit(1000, 10**9) for _ in range(100))


@pytest.mark.parametrize(
    "bad",
    [
        {"inbound_rate": -1},
        {"inbound_bytes_rate": -1},
        {"inbound_burst": 0},
        {"max_post_packets": 0},
        {"inbound_grace": 0},
    ],
)
def test_engine_config_rejects_bad_budget(bad: dict[str, Any]) -> None:
    """A negative rate, an empty burst or no packet per POST is a configuration error."""
    with pytest.raises(ValueError):
        EngineConfig(**bad)


# -- against a running server ----------------------------------------------------------------


class LagProbe:
    """Measures the longest the event loop went without running a 1 ms timer."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, loop.time() - before - 0.001)

    def __enter__(self) -> LagProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.fixture
async def relay() -> AsyncIterator[Callable[..., Awaitable[tuple[Server, int, list[Any]]]]]:
    """`await relay(grace=0.5, **server_kwargs)`: a seed-like Server; returns it, its port
    and the list of `flood` arguments its handler saw."""
    servers: list[Server] = []

    async def make(grace: float = 0.5, **kwargs: Any) -> tuple[Server, int, list[Any]]:
        io = Server(serve_client=False, **kwargs)
        io.engine.config = dataclasses.replace(io.engine.config, inbound_grace=grace)
        seen: list[Any] = []

        @io.on("connection")
        async def connection(socket: Any) -> None:
            @socket.on("flood")
            async def flood(n: Any) -> None:
                seen.append(n)

            @socket.on("echo")
            async def echo(n: Any) -> Any:
                return n

        servers.append(io)
        port = await io.start(HOST, 0)
        return io, port, seen

    yield make
    for io in servers:
        await io.shutdown()


async def ws_client(port: int) -> ClientConnection:
    ws = await connect(
        f"ws://{HOST}:{port}/socket.io/?EIO=4&transport=websocket",
        compression=None,
        ping_interval=None,
        max_size=None,
        open_timeout=5,
        close_timeout=1,
    )
    first = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(first, str) and first.startswith("0")
    await ws.send("40")
    reply = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(reply, str) and reply.startswith("40")
    return ws


async def round_trips(ws: ClientConnection, stop: asyncio.Event) -> list[float]:
    """An honest client: `echo` with an ack, one at a time, until `stop`; each round trip."""
    loop = asyncio.get_running_loop()
    times: list[float] = []
    n = 0
    while not stop.is_set():
        n += 1
        start = loop.time()
        await ws.send(f'42{n}["echo",{n}]')
        while True:
            message = await asyncio.wait_for(ws.recv(), 5)
            if message == "2":
                await ws.send("3")
                continue
            break
        assert message == f"43{n}[{n}]", message
        times.append(loop.time() - start)
        await asyncio.sleep(0.01)
    return times


async def test_websocket_flood_is_cut_off_bystander_unharmed(relay) -> None:
    """A websocket sending packets as fast as it can has the excess dropped and is closed
    once over budget for the grace period; an honest client's round trips stay short."""
    io, port, seen = await relay(grace=0.5, inbound_rate=100.0, inbound_burst=200)
    honest = await ws_client(port)
    flooder = await ws_client(port)
    stop = asyncio.Event()
    bystander = asyncio.create_task(round_trips(honest, stop))
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    with pytest.raises(ConnectionClosed):
        while loop.time() - start < 10:
            await flooder.send(f'42["flood",{sent}]')
            sent += 1
            if sent % 100 == 0:
                await asyncio.sleep(0)  # let the server read
    elapsed = loop.time() - start
    await asyncio.sleep(0.2)
    stop.set()
    times = await bystander
    await honest.close()
    stats = io.engine.inbound_stats
    assert stats.disconnects == 1 and stats.packets_dropped > 0
    assert elapsed < 5
    # The burst, the rate over the time it flooded, and no more.
    assert len(seen) <= 200 + 100 * elapsed + 10
    assert len(seen) < sent
    assert times and max(times) < 0.5


async def test_websocket_honest_pace_is_never_cut(relay) -> None:
    """A client sending well under its budget for a while gets every packet through."""
    io, port, seen = await relay(grace=0.3, inbound_rate=100.0, inbound_burst=50)
    ws = await ws_client(port)
    for i in range(60):
        await ws.send(f'42["flood",{i}]')
        await asyncio.sleep(0.015)  # ~66/s
    await asyncio.sleep(0.1)
    assert seen == list(range(60))
    assert io.engine.inbound_stats.packets_dropped == 0
    await ws.close()


async def _polling_session(http: Any, port: int) -> str:
    response = await http(port, "GET", "/socket.io/?EIO=4&transport=polling")
    assert response.status == 200
    return str(orjson.loads(response.body[1:])["sid"])


async def _post(http: Any, port: int, sid: str, body: bytes) -> Any:
    return await http(
        port, "POST", f"/socket.io/?EIO=4&transport=polling&sid={sid}", body, timeout=10
    )


@pytest.mark.parametrize(
    ("packets", "what"),
    [(22_000, "message"), (18_500, "connect")],
)
async def test_post_of_many_packets_refused_without_stalling(relay, http, packets, what) -> None:
    """A 1 MB POST of ~20,000 tiny packets (events, or CONNECTs to namespaces) is answered
    400 and its session closed, and the event loop never stalls 100 ms meanwhile."""
    io, port, seen = await relay()
    honest = await ws_client(port)
    sid = await _polling_session(http, port)
    if what == "message":
        await _post(http, port, sid, b"40")
        part = '2["flood","' + "x" * 28 + '"]'  # ~45 bytes a packet, as in a chat
    else:
        # A CONNECT to a namespace that does not exist each: answered one by one.
        part = "0/n%d," + '{"token":"' + "x" * 24 + '"}'
    body = "\x1e".join(
        "4" + (part % i if what == "connect" else part) for i in range(packets)
    ).encode()
    assert len(body) < 1_000_000
    stop = asyncio.Event()
    bystander = asyncio.create_task(round_trips(honest, stop))
    with LagProbe() as probe:
        response = await _post(http, port, sid, body)
        await asyncio.sleep(0.3)  # anything the POST set off runs now
    stop.set()
    times = await bystander
    await honest.close()
    assert response.status == 400
    assert sid not in io.engine.sessions
    assert io.engine.inbound_stats.posts_refused == 1
    assert len(seen) == 0
    assert probe.worst < 0.1, f"the loop stalled {probe.worst * 1000:.0f} ms"
    assert times and max(times) < 0.2


async def test_polling_over_budget_dropped_then_closed(relay, http) -> None:
    """POSTs past the packet budget are dropped; still over it after the grace period, the
    session is closed."""
    io, port, seen = await relay(grace=0.3, inbound_rate=10.0, inbound_burst=100)
    sid = await _polling_session(http, port)
    await _post(http, port, sid, b"40")
    batch = "\x1e".join(['42["flood",1]'] * 60).encode()
    loop = asyncio.get_running_loop()
    start = loop.time()
    statuses = []
    while sid in io.engine.sessions and loop.time() - start < 5:
        statuses.append((await _post(http, port, sid, batch)).status)
        await asyncio.sleep(0.02)
    assert sid not in io.engine.sessions
    assert io.engine.inbound_stats.disconnects == 1
    assert io.engine.inbound_stats.packets_dropped >= 60
    await asyncio.sleep(0.1)
    # The first batch fitted the burst (of 100, the CONNECT spent one); later ones mostly not.
    assert 60 <= len(seen) <= 60 + 10 * (loop.time() - start) + 60


def test_new_budget_shares_the_bursts_it_was_given() -> None:
    """Every connection's budget holds the engine's burst values themselves (no float made
    per connection), full until the first packet; and still refills to them."""
    clock = [0.0]
    burst, bytes_burst = 1_000_000, 5_000_000
    budget = InboundBudget(10.0, burst, 100.0, bytes_burst, clock=lambda: clock[0])
    assert budget._packets is burst and budget._packets_burst is burst
    assert budget._bytes is bytes_burst
    assert budget.admit(3, 30)
    clock[0] = 1e6  # long idle: full again
    assert budget.admit(1, 1)
    assert budget._packets == burst - 1

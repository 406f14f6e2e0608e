"""A bounded live fuzz: random and mutated Engine.IO / Socket.IO packets, over raw
websockets and raw long-polling, sent to a running `salas serve` while a bystander chats in a
room. The server must stay up, log no traceback, answer every one of the bystander's
messages, and close only fuzzing sessions.

Seeded: `SALAS_FUZZ_SEED=<n>` replays a run (the seed is in the failure message);
`SALAS_FUZZ_SECONDS` sets how long it fuzzes (default 8 s, at most 20).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import websockets

from tests.abuse.abuse_support import (
    ROOM,
    Honest,
    assert_clean_log,
    healthz,
    serving,
)

SEED = int(os.environ.get("SALAS_FUZZ_SEED", "20261130"))
SECONDS = min(20.0, float(os.environ.get("SALAS_FUZZ_SECONDS", "8")))
WEBSOCKET_FUZZERS = 3
POLLING_FUZZERS = 3
# The bystander shares this process (and its CPU) with the fuzzers: a looser bound than the
# abuse suite's, still far below what a stalled server shows.
BYSTANDER_BOUND = 1.0
SEPARATOR = "\x1e"

# Valid packets to start from: Engine.IO types, Socket.IO packets of every kind, chat events.
CORPUS = [
    "0",
    "1",
    "2",
    "3",
    "2probe",
    "3probe",
    "5",
    "6",
    "4hello",
    "40",
    '40{"name":"fuzz"}',
    '40{"token":"x"}',
    "40/admin,",
    "41",
    "41/admin,",
    '42["message","hi"]',
    f'42["message",{{"channel":"{ROOM}","message":"hi","client_id":"c1"}}]',
    f'421["channel_join","{ROOM}"]',
    f'422["channel_leave",{{"channel":"{ROOM}"}}]',
    f'423["typing",{{"channel":"{ROOM}","typing":true}}]',
    f'424["history",{{"channel":"{ROOM}","limit":5,"before":3}}]',
    '425["nick","fuzzer"]',
    '42/admin,7["x"]',
    '43["ack"]',
    '4312["ack",{"a":1}]',
    '451-["message",{"_placeholder":true,"num":0}]',
    '461-12[{"_placeholder":true,"num":0}]',
    '44{"message":"x"}',
]
WEIRD_VALUES = [
    "null",
    "true",
    "[]",
    "{}",
    "1e400",
    "-1",
    "99999999999999999999999999999999",
    "1.5",
    '"' + "x" * 2000 + '"',
    '"\\ud800"',
    '"\\u0000"',
    '{"_placeholder":true,"num":99}',
    '[{"channel":null,"message":[]}]',
]
WEIRD_QUERIES = [
    "EIO=3&transport=polling",
    "EIO=4&transport=flash",
    "EIO=4&transport=polling&sid=" + "x" * 300,
    "EIO=4&transport=polling&b64=1",
    "EIO=4&transport=polling&j=0",
    "EIO=99999999999999999999&transport=polling",
    "EIO=4&transport=websocket",
    "EIO=4&transport=polling&sid=%00%0a",
]


class Mutator:
    """Random and mutated packets from one seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._mutations: list[Callable[[str], str]] = [
            self.flip,
            self.truncate,
            self.duplicate_separators,
            self.insert_binary,
            self.huge_number,
            self.wrong_type,
            self.splice,
            self.nest,
            lambda text: text,  # a valid packet now and then keeps the session going
        ]

    def packet(self) -> str:
        text = self.rng.choice(CORPUS)
        for _ in range(self.rng.choice((1, 1, 1, 2, 3))):
            text = self.rng.choice(self._mutations)(text)
        return text

    def random_bytes(self) -> bytes:
        return self.rng.randbytes(self.rng.choice((1, 2, 5, 40, 700)))

    def flip(self, text: str) -> str:
        data = bytearray(text.encode())
        for _ in range(self.rng.randint(1, 3)):
            if data:
                data[self.rng.randrange(len(data))] ^= 1 << self.rng.randrange(8)
        return data.decode(errors="replace")

    def truncate(self, text: str) -> str:
        return text[: self.rng.randrange(len(text) + 1)]

    def duplicate_separators(self, text: str) -> str:
        cut = self.rng.randrange(len(text) + 1)
        return text[:cut] + self.rng.choice((SEPARATOR * 2, ",,", "--", "//")) + text[cut:]

    def insert_binary(self, text: str) -> str:
        junk = self.rng.randbytes(self.rng.randint(1, 16)).decode("latin-1")
        cut = self.rng.randrange(len(text) + 1)
        return text[:cut] + junk + text[cut:]

    def huge_number(self, text: str) -> str:
        digits = [i for i, c in enumerate(text) if c.isdigit()]
        if not digits:
            return text + "9" * self.rng.randint(1, 40)
        i = self.rng.choice(digits)
        return text[:i] + "9" * self.rng.randint(10, 400) + text[i + 1 :]

    def wrong_type(self, text: str) -> str:
        start = text.find("[")
        if start == -1:
            return text + self.rng.choice(WEIRD_VALUES)
        value = self.rng.choice(WEIRD_VALUES)
        comma = text.find(",", start)
        if comma == -1:
            return text[: start + 1] + value + "]"
        return text[: comma + 1] + value + "]"

    def nest(self, text: str) -> str:
        depth = self.rng.choice((50, 600, 1_100, 5_000))
        inner = self.rng.choice(("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth))
        return self.wrong_type(text).replace("]", "," + inner + "]", 1)

    def splice(self, text: str) -> str:
        other = self.rng.choice(CORPUS)
        return text[: self.rng.randrange(len(text) + 1)] + other[self.rng.randrange(len(other)) :]


class Stats:
    """What the fuzzers did (printed, and part of a failure's message)."""

    def __init__(self) -> None:
        self.sent = 0
        self.sessions = 0
        self.closed = 0
        self.statuses: dict[int, int] = {}

    def __str__(self) -> str:
        return (
            f"seed {SEED}: {self.sent} packets in {self.sessions} sessions "
            f"({self.closed} closed by the server), HTTP statuses {self.statuses}"
        )


async def _websocket_fuzzer(port: int, rng: random.Random, deadline: float, stats: Stats) -> None:
    mutator = Mutator(rng)
    url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    while time.monotonic() < deadline:
        try:
            async with websockets.connect(url, open_timeout=5, max_size=None) as ws:
                stats.sessions += 1
                await asyncio.wait_for(ws.recv(), 5)  # the open packet
                if rng.random() < 0.7:
                    await ws.send("40")
                drain = asyncio.create_task(_drain(ws))
                try:
                    for _ in range(rng.randint(1, 60)):
                        if time.monotonic() > deadline or drain.done():
                            break
                        if rng.random() < 0.1:
                            await ws.send(mutator.random_bytes())
                        else:
                            await ws.send(mutator.packet())
                        stats.sent += 1
                        await asyncio.sleep(rng.choice((0, 0, 0.001, 0.01)))
                finally:
                    drain.cancel()
                    with contextlib.suppress(asyncio.CancelledError, websockets.WebSocketException):
                        await drain
        except websockets.ConnectionClosed:
            stats.closed += 1
        except websockets.InvalidStatus as refused:
            code = refused.response.status_code
            stats.statuses[code] = stats.statuses.get(code, 0) + 1
            await asyncio.sleep(0.05)


async def _drain(ws: websockets.ClientConnection) -> None:
    """Read what the server sends (so it never sees a slow reader) until it closes."""
    async for _ in ws:
        pass


async def _polling_fuzzer(port: int, rng: random.Random, deadline: float, stats: Stats) -> None:
    mutator = Mutator(rng)
    base = f"http://127.0.0.1:{port}/socket.io/"
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while time.monotonic() < deadline:
            try:
                await _polling_session(http, base, mutator, rng, deadline, stats)
            except (aiohttp.ClientError, TimeoutError):
                stats.closed += 1


def _count(stats: Stats, status: int) -> None:
    stats.statuses[status] = stats.statuses.get(status, 0) + 1


async def _polling_session(
    http: aiohttp.ClientSession,
    base: str,
    mutator: Mutator,
    rng: random.Random,
    deadline: float,
    stats: Stats,
) -> None:
    if rng.random() < 0.15:
        async with http.get(f"{base}?{rng.choice(WEIRD_QUERIES)}") as response:
            _count(stats, response.status)
            await response.read()
        return
    async with http.get(f"{base}?EIO=4&transport=polling") as response:
        _count(stats, response.status)
        text = await response.text()
    sid = json.loads(text[1:])["sid"]
    stats.sessions += 1
    url = f"{base}?EIO=4&transport=polling&sid={sid}"
    if rng.random() < 0.7:
        async with http.post(url, data="40") as response:
            _count(stats, response.status)
    for _ in range(rng.randint(1, 12)):
        if time.monotonic() > deadline:
            return
        packets = [mutator.packet() for _ in range(rng.randint(1, 8))]
        stats.sent += len(packets)
        if rng.random() < 0.1:
            body: str | bytes = mutator.random_bytes()
            headers = {"Content-Type": "application/octet-stream"}
        elif rng.random() < 0.1:
            body = "b" + base64.b64encode(mutator.random_bytes()).decode()
            headers = {"Content-Type": "text/plain;charset=UTF-8"}
        else:
            body = rng.choice((SEPARATOR, SEPARATOR * 2, "")).join(packets)
            headers = {"Content-Type": "text/plain;charset=UTF-8"}
        async with http.post(url, data=body, headers=headers) as response:
            _count(stats, response.status)
            if response.status != 200:
                stats.closed += 1
                return
        # Collect what the server has for this session, without waiting for a ping.
        if rng.random() < 0.5:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=0.3)) as response:
                _count(stats, response.status)
                await response.read()


async def test_live_fuzz_leaves_the_server_and_a_bystander_unharmed(tmp_path: Path) -> None:
    """Seconds of random and mutated packets over both transports, from several sessions at
    once, while a bystander chats: the server stays up without a traceback, the bystander
    gets every message back in time and stays connected, and it alone is never closed."""
    rng = random.Random(SEED)
    stats = Stats()
    try:
        async with serving(tmp_path) as server:
            bystander = await Honest(server.port, "bystander").start()
            try:
                await _fuzz_while_chatting(server.port, bystander, rng, stats)
            finally:
                await bystander.stop()
        assert_clean_log(server)
    except AssertionError as failed:
        raise AssertionError(f"{stats}\n{failed}") from None


async def _fuzz_while_chatting(
    port: int, bystander: Honest, rng: random.Random, stats: Stats
) -> None:
    await bystander.round_trip()
    bystander.latencies.clear()
    bystander.chatter(period=0.25)
    deadline = time.monotonic() + SECONDS
    fuzzers = [
        _websocket_fuzzer(port, random.Random(rng.random()), deadline, stats)
        for _ in range(WEBSOCKET_FUZZERS)
    ] + [
        _polling_fuzzer(port, random.Random(rng.random()), deadline, stats)
        for _ in range(POLLING_FUZZERS)
    ]
    await asyncio.wait_for(asyncio.gather(*fuzzers), SECONDS + 15)
    await bystander.round_trip()
    await bystander.stop_chatter()
    print(f"\n[live fuzz] {stats}")
    assert stats.sent > 200
    assert await healthz(port) == 200
    bystander.assert_served(bound=BYSTANDER_BOUND, at_least=int(SECONDS * 2))

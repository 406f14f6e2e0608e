"""Subscription (salas.adapter.redis_subscription): a few channels' messages, read by one task."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from salas.adapter.redis_subscription import Subscription
from tests.support.services import kill_redis_clients_named

Received = list[tuple[bytes, bytes]]


def _channel() -> str:
    return "salas-test-sub:" + secrets.token_hex(4)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_messages_arrive_in_the_order_published(
    redis_url: str, redis: aioredis.Redis
) -> None:
    one, two = _channel(), _channel()
    received: Received = []
    sub = Subscription(redis_url, [one, two], lambda c, m: received.append((c, m)))
    await sub.start()
    try:
        for i in range(500):
            await redis.publish(one if i % 2 else two, f"m{i}")
        await _until(lambda: len(received) == 500)
        assert [m for _, m in received] == [f"m{i}".encode() for i in range(500)]
        assert {c for c, _ in received} == {one.encode(), two.encode()}
    finally:
        await sub.close()


async def test_a_burst_published_at_once_is_handed_on_whole(
    redis_url: str, redis: aioredis.Redis
) -> None:
    """Many messages in one read (a pipeline of publishes, large and small): none is lost
    or cut where a read ended."""
    channel = _channel()
    received: Received = []
    sub = Subscription(redis_url, [channel], lambda c, m: received.append((c, m)))
    await sub.start()
    sent = [secrets.token_bytes(i * 37 % 70_000) for i in range(300)]
    try:
        pipe = redis.pipeline(transaction=False)
        for body in sent:
            pipe.publish(channel, body)
        await pipe.execute()
        await _until(lambda: len(received) == len(sent))
        assert [m for _, m in received] == sent
    finally:
        await sub.close()


async def test_a_failing_handler_is_logged_and_the_next_message_handled(
    redis_url: str, redis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    channel = _channel()
    received: list[bytes] = []

    def handle(_: bytes, message: bytes) -> None:
        if message == b"bad":
            raise ValueError("cannot handle it")
        received.append(message)

    sub = Subscription(redis_url, [channel], handle)
    await sub.start()
    try:
        with caplog.at_level(logging.ERROR, "salas.adapter"):
            for body in ("a", "bad", "b"):
                await redis.publish(channel, body)
            await _until(lambda: received == [b"a", b"b"])
        assert "bad message" in caplog.text and "cannot handle it" in caplog.text
    finally:
        await sub.close()


async def test_an_async_handler_holds_the_next_message_until_it_is_done(
    redis_url: str, redis: aioredis.Redis
) -> None:
    channel = _channel()
    log: list[str] = []

    def handle(_: bytes, message: bytes) -> Awaitable[None] | None:
        if message != b"slow":
            log.append(message.decode())
            return None

        async def slowly() -> None:
            await asyncio.sleep(0.1)
            log.append("slow")

        return slowly()

    sub = Subscription(redis_url, [channel], handle)
    await sub.start()
    try:
        for body in ("first", "slow", "last"):
            await redis.publish(channel, body)
        await _until(lambda: len(log) == 3)
        assert log == ["first", "slow", "last"]
    finally:
        await sub.close()


async def test_a_killed_connection_is_subscribed_again(
    redis_url: str, redis: aioredis.Redis
) -> None:
    """CLIENT KILL of the subscription's connection: it connects and subscribes again by
    itself, runs on_subscribed again, and messages flow again."""
    channel = _channel()
    name = "salas-test-" + secrets.token_hex(4)
    received: list[bytes] = []
    subscribed = 0

    async def on_subscribed() -> None:
        nonlocal subscribed
        subscribed += 1

    joiner = "&" if "?" in redis_url else "?"
    sub = Subscription(
        f"{redis_url}{joiner}client_name={name}",
        [channel],
        lambda _, m: received.append(m),
        on_subscribed=on_subscribed,
    )
    await sub.start()
    try:
        assert subscribed == 1
        await redis.publish(channel, "before")
        await _until(lambda: received == [b"before"])
        assert await kill_redis_clients_named(redis_url, name) == 1
        await _until(lambda: subscribed == 2)
        assert await redis.publish(channel, "after") == 1
        await _until(lambda: received == [b"before", b"after"])
    finally:
        await sub.close()


async def test_unreachable_redis_fails_start_within_the_timeout() -> None:
    sub = Subscription("redis://127.0.0.1:1/0", ["c"], lambda c, m: None, timeout=1.0)
    try:
        with pytest.raises((RedisConnectionError, OSError, TimeoutError)):
            await asyncio.wait_for(sub.start(), 3)
    finally:
        await sub.close()


async def test_a_failing_first_on_subscribed_fails_start(redis_url: str) -> None:
    async def refuse() -> None:
        raise RuntimeError("not ready")

    sub = Subscription(redis_url, [_channel()], lambda c, m: None, on_subscribed=refuse)
    with pytest.raises(RuntimeError, match="not ready"):
        await sub.start()
    await sub.close()


async def test_nothing_is_handed_on_after_close(redis_url: str, redis: aioredis.Redis) -> None:
    channel = _channel()
    received: list[bytes] = []
    sub = Subscription(redis_url, [channel], lambda _, m: received.append(m))
    await sub.start()
    await redis.publish(channel, "one")
    await _until(lambda: received == [b"one"])
    await sub.close()
    await sub.close()  # idempotent
    assert await redis.publish(channel, "two") == 0  # nobody listens any more
    await asyncio.sleep(0.1)
    assert received == [b"one"]


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        Subscription("redis://127.0.0.1:6379/0", [], lambda c, m: None)
    with pytest.raises(ValueError):
        Subscription("redis://127.0.0.1:6379/0", ["c"], lambda c, m: None, timeout=0)


# -- a peer that misbehaves --------------------------------------------------------------------
class FakeRedis:
    """A server that confirms SUBSCRIBE, answers other commands with +OK, and then does
    what `after_subscribe` says with each connection (hostile peers)."""

    def __init__(self, after_subscribe: Callable[[asyncio.StreamWriter], None]) -> None:
        self.after_subscribe = after_subscribe
        self.connections = 0
        self.pings = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def __aexit__(self, *_: Any) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while data := await reader.read(65536):
                for command in data.split(b"*")[1:]:
                    words = command.split(b"\r\n")
                    name = words[2].upper() if len(words) > 2 else b""
                    if name == b"SUBSCRIBE":
                        channels = words[4::2][: (len(words) - 3) // 2]
                        for n, channel in enumerate(channels, 1):
                            writer.write(
                                b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:%d\r\n"
                                % (len(channel), channel, n)
                            )
                        self.after_subscribe(writer)
                    elif name == b"PING":
                        self.pings += 1  # and no answer
                    else:
                        writer.write(b"+OK\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


async def test_a_silent_connection_is_pinged_then_dropped_and_subscribed_again() -> None:
    """A peer that goes quiet (a half-open connection): after ping_interval a PING, and
    with no answer within the timeout the subscription connects again."""
    fake = FakeRedis(lambda writer: None)
    async with fake as url:
        sub = Subscription(url, ["c"], lambda c, m: None, timeout=0.3, ping_interval=0.2)
        await sub.start()
        try:
            await _until(lambda: fake.connections >= 2, timeout=5)
            assert fake.pings >= 1
        finally:
            await sub.close()


async def test_garbage_from_the_peer_drops_the_connection_not_the_reader(
    redis_url: str, redis: aioredis.Redis
) -> None:
    """A peer that sends what is not RESP after subscribing: that subscription reconnects
    (and is fed garbage again), while an honest subscription beside it is unaffected."""

    def garbage_soon(writer: asyncio.StreamWriter) -> None:
        asyncio.get_running_loop().call_later(0.05, writer.write, b"!this is not resp\r\n")

    fake = FakeRedis(garbage_soon)
    channel = _channel()
    honest: list[bytes] = []
    good = Subscription(redis_url, [channel], lambda _, m: honest.append(m))
    await good.start()
    async with fake as url:
        hostile = Subscription(url, ["c"], lambda c, m: None, timeout=1.0)
        await hostile.start()
        try:
            await _until(lambda: fake.connections >= 3, timeout=5)
            for i in range(50):
                await redis.publish(channel, f"m{i}")
            await _until(lambda: len(honest) == 50)
            assert honest == [f"m{i}".encode() for i in range(50)]
        finally:
            await hostile.close()
            await good.close()


async def test_an_error_reply_to_subscribe_fails_start() -> None:
    class Refusing(FakeRedis):
        async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            while data := await reader.read(65536):
                if b"SUBSCRIBE" in data:
                    writer.write(b"-NOPERM this user has no permissions to access the channel\r\n")
                else:
                    writer.write(b"+OK\r\n" * data.count(b"*"))
                await writer.drain()
            writer.close()

    async with Refusing(lambda writer: None) as url:
        sub = Subscription(url, ["c"], lambda c, m: None, timeout=1.0)
        with pytest.raises(ConnectionError, match="NOPERM"):
            await sub.start()
        await sub.close()


async def test_messages_that_come_with_the_confirmations_are_handed_on_after_them() -> None:
    """A message of the first channel between its confirmation and the second's, and one
    behind the last confirmation in the same read (Redis does both under load): each is
    handed on, in order, after on_subscribed — none is taken for a failed subscription."""

    class Eager(FakeRedis):
        async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self.writers.append(writer)
            while data := await reader.read(65536):
                if b"SUBSCRIBE" in data:
                    writer.write(
                        b"*3\r\n$9\r\nsubscribe\r\n$2\r\nc1\r\n:1\r\n"
                        b"*3\r\n$7\r\nmessage\r\n$2\r\nc1\r\n$5\r\nfirst\r\n"
                        b"*3\r\n$9\r\nsubscribe\r\n$2\r\nc2\r\n:2\r\n"
                        b"*3\r\n$7\r\nmessage\r\n$2\r\nc2\r\n$6\r\nsecond\r\n"
                    )
                else:
                    writer.write(b"+OK\r\n" * data.count(b"*"))
                await writer.drain()

    log: list[Any] = []

    async def on_subscribed() -> None:
        log.append("subscribed")

    async with Eager(lambda writer: None) as url:
        sub = Subscription(
            url, ["c1", "c2"], lambda c, m: log.append((c, m)), on_subscribed=on_subscribed
        )
        await sub.start()
        try:
            await _until(lambda: len(log) == 3)
            assert log == ["subscribed", (b"c1", b"first"), (b"c2", b"second")]
        finally:
            await sub.close()

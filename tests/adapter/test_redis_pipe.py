"""CommandPipe (salas.adapter.redis_pipe): many tasks' commands over one Redis connection."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from salas.adapter.redis_pipe import CommandPipe
from tests.support.services import kill_redis_clients_named


@pytest.fixture
async def pipe(redis_url: str) -> AsyncIterator[CommandPipe]:
    pipe = CommandPipe(redis_url, timeout=2.0)
    yield pipe
    await pipe.close()


def _key() -> str:
    return "salas-test-pipe:" + secrets.token_hex(4)


async def test_each_caller_gets_its_own_reply(pipe: CommandPipe) -> None:
    """Hundreds of commands at once from as many tasks: every reply reaches its caller."""
    replies = await asyncio.gather(*(pipe.execute("ECHO", f"n{i}") for i in range(500)))
    assert replies == [f"n{i}".encode() for i in range(500)]


async def test_commands_issued_together_share_a_write(pipe: CommandPipe) -> None:
    await pipe.execute("PING")
    link = pipe._link
    assert link is not None
    writes: list[int] = []
    writelines = link._writer.writelines

    def counting(data: Any) -> None:
        data = list(data)
        writes.append(len(data))
        writelines(data)

    link._writer.writelines = counting  # type: ignore[method-assign]
    key = _key()
    try:
        results = await asyncio.gather(*(pipe.execute("INCR", key) for _ in range(200)))
        assert sorted(results) == list(range(1, 201))
        assert sum(writes) == 200  # every command written...
        assert len(writes) <= 2  # ...in one write for the lot (two if a turn came between)
    finally:
        await pipe.execute("DEL", key)


async def test_an_error_reply_fails_only_its_command(pipe: CommandPipe) -> None:
    results = await asyncio.gather(
        pipe.execute("ECHO", "before"),
        pipe.execute("NO-SUCH-COMMAND", "x"),
        pipe.execute("ECHO", "after"),
        return_exceptions=True,
    )
    assert results[0] == b"before" and results[2] == b"after"
    assert isinstance(results[1], ResponseError)


async def test_a_cancelled_caller_does_not_shift_the_others_replies(pipe: CommandPipe) -> None:
    tasks = [asyncio.create_task(pipe.execute("ECHO", f"n{i}")) for i in range(50)]
    await asyncio.sleep(0)  # queued
    for task in tasks[::3]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for i, result in enumerate(results):
        if i % 3 == 0:
            assert isinstance(result, asyncio.CancelledError)
        else:
            assert result == f"n{i}".encode()
    assert await pipe.execute("ECHO", "next") == b"next"


async def test_a_reply_overdue_fails_the_commands_waiting_then_it_reconnects(
    redis_url: str,
) -> None:
    """A command whose reply never comes (BLPOP on an empty list, for ever) times out, with
    the one queued behind it; the next command gets a fresh connection."""
    pipe = CommandPipe(redis_url, timeout=0.3)
    try:
        await pipe.execute("PING")
        loop = asyncio.get_running_loop()
        began = loop.time()
        stuck = await asyncio.gather(
            pipe.execute("BLPOP", _key(), 0), pipe.execute("ECHO", "behind"), return_exceptions=True
        )
        assert all(isinstance(r, TimeoutError) for r in stuck), stuck
        assert loop.time() - began < 1.5
        assert await pipe.execute("ECHO", "again") == b"again"
    finally:
        await pipe.close()


async def test_a_connection_killed_fails_what_waits_and_the_next_command_reconnects(
    pipe: CommandPipe, redis_url: str
) -> None:
    name = "salas-test-" + secrets.token_hex(4)
    await pipe.execute("CLIENT", "SETNAME", name)
    waiting = asyncio.create_task(pipe.execute("BLPOP", _key(), 0))
    await asyncio.sleep(0.05)
    assert await kill_redis_clients_named(redis_url, name) == 1
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(waiting, 2)
    assert await pipe.execute("ECHO", "back") == b"back"


async def test_a_script_unknown_to_redis_is_loaded(pipe: CommandPipe) -> None:
    script = pipe.script("return ARGV[1] .. KEYS[1]")
    await pipe.execute("SCRIPT", "FLUSH")
    assert await script(keys=["k"], args=["v"]) == b"vk"
    assert await script(keys=["a"], args=["b"]) == b"ba"  # by its SHA1 now


async def test_unreachable_redis_fails_within_the_timeout() -> None:
    pipe = CommandPipe("redis://127.0.0.1:1/0", timeout=1.0)
    try:
        with pytest.raises((RedisConnectionError, OSError, TimeoutError)):
            await asyncio.wait_for(pipe.execute("PING"), 3)
    finally:
        await pipe.close()


async def test_a_closed_pipe_refuses_commands(redis_url: str) -> None:
    pipe = CommandPipe(redis_url)
    assert await pipe.execute("PING") in (b"PONG", True)
    await pipe.close()
    with pytest.raises(RedisConnectionError):
        await pipe.execute("PING")


async def test_a_server_sending_garbage_fails_the_command_not_the_pipe() -> None:
    """A peer that is not Redis (or a broken one) answers with bytes that are not RESP: the
    command fails, and the pipe connects again for the next one."""
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while data := await reader.read(65536):
            if b"ECHO" in data:
                writer.write(b"!not resp\r\n")
            else:  # "+OK" to each command
                writer.write(
                    b"+OK\r\n" * sum(1 for line in data.split(b"\r\n") if line[:1] == b"*")
                )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pipe = CommandPipe(f"redis://127.0.0.1:{port}/0", timeout=1.0)
    try:
        assert await pipe.execute("SET", "k", "v") in (b"OK", "OK", True)
        with pytest.raises(RedisConnectionError, match="not RESP"):
            await asyncio.wait_for(pipe.execute("ECHO", "x"), 3)
        assert await pipe.execute("SET", "k", "v") in (b"OK", "OK", True)
        assert connections == 2
    finally:
        await pipe.close()
        server.close()
        await server.wait_closed()

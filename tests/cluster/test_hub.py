"""The local hub (salas.cluster.hub) through redis-py's asyncio client, as the workers use it,
and through raw sockets for what no honest client sends: every command salas' cluster code
needs, pub/sub order, transactions, scripts, and each limit beside an honest client."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from salas.cluster.hub import LocalHub, remove_stale_directories
from salas.cluster.hub_scripts import sha1_of
from salas.cluster.node import ClusterNode
from salas.cluster.scripts import RELEASE_SCRIPT, SEQUENCE_SCRIPT

StartHub = Callable[..., Awaitable[LocalHub]]
WAIT = 5.0  # seconds any awaited outcome gets


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Until `check()` holds (polled), at most WAIT seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not await check():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.01)


class Raw:
    """A connection speaking bytes to the hub."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, hub: LocalHub) -> Raw:
        return cls(*await asyncio.open_unix_connection(hub.path))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def line(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), WAIT)

    async def until_closed(self) -> bytes:
        """Everything the hub writes until it closes the connection."""
        try:
            return await asyncio.wait_for(self.reader.read(), WAIT)
        except ConnectionError:  # (reset, or a broken pipe of ours seen first)
            return b"(reset)"

    def close(self) -> None:
        self.writer.close()


def command(*words: bytes | str) -> bytes:
    """A request in RESP, as clients send them."""
    encoded = [w if isinstance(w, bytes) else w.encode() for w in words]
    return b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in encoded)


async def honest(client: aioredis.Redis) -> None:
    """An honest client's round of commands: all of them work."""
    assert await client.set("honest", b"x" * 1000) is True
    assert await client.get("honest") == b"x" * 1000
    assert await client.delete("honest") == 1


# -- the socket ------------------------------------------------------------------------------
async def test_the_socket_is_private_and_removed_on_close(start_hub: StartHub) -> None:
    """The socket is 0600 in a fresh 0700 directory of this user; close removes both."""
    hub = await start_hub()
    directory = os.path.dirname(hub.path)
    assert hub.url == f"unix://{hub.path}?protocol=2"
    info = os.stat(directory)
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
    assert stat.S_IMODE(os.stat(hub.path).st_mode) == 0o600
    assert stat.S_ISSOCK(os.stat(hub.path).st_mode)
    await hub.close()
    assert not os.path.exists(directory)
    await hub.close()  # idempotent


async def test_the_handshake_redis_py_sends(hub: LocalHub, client: aioredis.Redis) -> None:
    """PING, HELLO 2 (HELLO 3 refused as Redis 5 did), CLIENT SETINFO/SETNAME, SELECT 0."""
    assert await client.ping() is True
    assert await client.client_setname("worker") is True
    raw = await Raw.open(hub)
    try:
        await raw.send(
            command("PING", "hi")
            + command("HELLO", "3")
            + command("CLIENT", "SETINFO", "LIB-NAME", "redis-py")
            + command("SELECT", "0")
            + command("SELECT", "1")
            + command("HELLO", "2")
        )
        assert [await raw.line() for _ in range(6)] == [
            b"$2\r\n",
            b"hi\r\n",
            b"-NOPROTO unsupported protocol version\r\n",
            b"+OK\r\n",
            b"+OK\r\n",
            b"-ERR DB index is out of range\r\n",
        ]
        assert await raw.line() == b"*14\r\n"  # server, version, proto 2...
        await raw.send(command("QUIT") + command("PING"))
        rest = await raw.until_closed()  # the rest of HELLO's answer, QUIT's; no PONG
        assert rest.endswith(b"*0\r\n+OK\r\n") and b"PONG" not in rest, rest
    finally:
        raw.close()


# -- keys -------------------------------------------------------------------------------------
async def test_set_nx_px_expires(hub: LocalHub, client: aioredis.Redis) -> None:
    """SET NX PX: one taker, the key gone after its TTL, then takeable again; EX alike."""
    assert await client.set("lock", "a", nx=True, px=200) is True
    assert await client.set("lock", "b", nx=True, px=200) is None
    assert await client.get("lock") == b"a"

    async def gone() -> bool:
        return await client.get("lock") is None

    await eventually(gone, "the key outlived its PX")
    assert await client.set("lock", "b", nx=True, ex=60) is True
    assert await client.get("lock") == b"b"


async def test_expired_keys_nobody_reads_are_swept(hub: LocalHub, client: aioredis.Redis) -> None:
    """The hub frees expired keys by itself: memory stays bounded."""
    for n in range(100):
        await client.set(f"claim:{n}", "node", px=20)
    await client.set("kept", "v")

    async def swept() -> bool:
        return len(hub.keys) == 1

    await eventually(swept, "expired keys were not swept")
    assert await client.get("kept") == b"v"


async def test_the_data_commands_the_cluster_uses(client: aioredis.Redis) -> None:
    """DEL/EXISTS of several keys, INCR, hashes and sets as redis-py returns them."""
    await client.set("a", "1")
    await client.set("b", "2")
    assert await client.exists("a", "b", "c") == 2
    assert await client.delete("a", "c") == 1
    assert await client.execute_command("INCR", "n") == 1
    assert await client.execute_command("INCR", "n") == 2
    assert await client.hset("h", "sid1", b"{}") == 1
    assert await client.hset("h", "sid2", b"[]") == 1
    assert await client.hgetall("h") == {b"sid1": b"{}", b"sid2": b"[]"}
    assert sorted(await client.hkeys("h")) == [b"sid1", b"sid2"]
    assert await client.hdel("h", "sid1") == 1
    assert await client.sadd("nodes", "n1", "n2") == 2
    assert await client.smembers("nodes") == {b"n1", b"n2"}
    assert await client.srem("nodes", "n1") == 1
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await client.hgetall("nodes")


# -- pub/sub ----------------------------------------------------------------------------------
async def _messages(pubsub: aioredis.client.PubSub, count: int) -> list[bytes]:
    got: list[bytes] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while len(got) < count:
        assert loop.time() < deadline, f"{len(got)} of {count} messages"
        item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if item is not None:
            got.append(item["data"])
    return got


async def test_every_subscriber_gets_the_publications_in_one_order(hub: LocalHub) -> None:
    """Two publishers at once, pipelined: both subscribers get every message once, in the
    same order, each publisher's in the order it published."""
    clients = [aioredis.from_url(hub.url) for _ in range(4)]
    try:
        subs = [clients[0].pubsub(), clients[1].pubsub()]
        for sub in subs:
            await sub.subscribe("room")

        async def publish(client: aioredis.Redis, tag: str) -> None:
            pipe = client.pipeline(transaction=False)
            for n in range(300):
                pipe.publish("room", f"{tag}{n}")
            assert await pipe.execute() == [2] * 300

        await asyncio.gather(publish(clients[2], "a"), publish(clients[3], "b"))
        first, second = [await _messages(sub, 600) for sub in subs]
        assert first == second
        for tag in "ab":
            assert [m for m in first if m.startswith(tag.encode())] == [
                f"{tag}{n}".encode() for n in range(300)
            ]
        for sub in subs:
            await sub.aclose()
    finally:
        for client in clients:
            await client.aclose()


async def test_numsub_counts_subscribers(hub: LocalHub, client: aioredis.Redis) -> None:
    """PUBSUB NUMSUB: per channel, dropping on UNSUBSCRIBE and when a connection closes."""
    one, two = client.pubsub(), client.pubsub()
    await one.subscribe("x", "y")
    await two.subscribe("x")
    assert await client.pubsub_numsub("x", "y", "z") == [(b"x", 2), (b"y", 1), (b"z", 0)]
    await one.unsubscribe("y")

    async def numsub(channel: str, expected: int) -> bool:
        return bool(await client.pubsub_numsub(channel) == [(channel.encode(), expected)])

    await eventually(lambda: numsub("y", 0), "UNSUBSCRIBE did not count")
    await two.aclose()
    await eventually(lambda: numsub("x", 1), "a closed subscriber still counted")
    await one.aclose()


async def test_a_subscribed_connection_takes_only_pubsub_commands(hub: LocalHub) -> None:
    """As in Redis (RESP2): GET refused, PING answered as a pub/sub reply."""
    raw = await Raw.open(hub)
    try:
        await raw.send(command("SUBSCRIBE", "c") + command("GET", "k") + command("PING"))
        assert await raw.line() == b"*3\r\n"
        for _ in range(5):
            await raw.line()
        assert (await raw.line()).startswith(b"-ERR Can't execute 'get'")
        assert [await raw.line() for _ in range(5)] == [
            b"*2\r\n", b"$4\r\n", b"pong\r\n", b"$0\r\n", b"\r\n",
        ]  # fmt: skip
    finally:
        raw.close()


# -- transactions ---------------------------------------------------------------------------
async def test_a_multi_pipeline_with_publish(hub: LocalHub, client: aioredis.Redis) -> None:
    """MULTI/EXEC as the cluster node sends it: the writes and the message, in order."""
    sub = client.pubsub()
    await sub.subscribe("cluster")
    pipe = client.pipeline(transaction=True)
    pipe.hset("sockets:n1", "sid", b"{}")
    pipe.publish("cluster", b"record")
    pipe.sadd("nodes", "n1")
    pipe.set("alive:n1", b"1", px=3000)
    assert await pipe.execute() == [1, 1, 1, True]
    assert await _messages(sub, 1) == [b"record"]
    assert await client.hgetall("sockets:n1") == {b"sid": b"{}"}
    await sub.aclose()


async def test_a_transaction_with_a_bad_command_runs_nothing(
    hub: LocalHub, client: aioredis.Redis
) -> None:
    """An unknown command queued: EXECABORT, none of the queued writes happen; EXEC and
    DISCARD without MULTI are errors; the connection serves on."""
    raw = await Raw.open(hub)
    try:
        await raw.send(
            command("MULTI") + command("SET", "t", "1") + command("NOPE") + command("EXEC")
        )
        assert await raw.line() == b"+OK\r\n"
        assert await raw.line() == b"+QUEUED\r\n"
        assert (await raw.line()).startswith(b"-ERR unknown command 'NOPE'")
        assert (await raw.line()).startswith(b"-EXECABORT")
        await raw.send(command("EXEC") + command("DISCARD") + command("MULTI") + command("MULTI"))
        assert await raw.line() == b"-ERR EXEC without MULTI\r\n"
        assert await raw.line() == b"-ERR DISCARD without MULTI\r\n"
        assert await raw.line() == b"+OK\r\n"
        assert await raw.line() == b"-ERR MULTI calls can not be nested\r\n"
        await raw.send(command("DISCARD") + command("PING"))
        assert [await raw.line(), await raw.line()] == [b"+OK\r\n", b"+PONG\r\n"]
    finally:
        raw.close()
    assert await client.get("t") is None


async def test_a_transaction_over_the_request_limit_is_refused(start_hub: StartHub) -> None:
    """Queued commands count against the request limit: past it, EXECABORT, nothing done."""
    hub = await start_hub(max_request=4096)
    client = aioredis.from_url(hub.url)
    try:
        pipe = client.pipeline(transaction=True)
        for n in range(20):
            pipe.set(f"k{n}", b"v" * 300)
        with pytest.raises(ResponseError):
            await pipe.execute()
        assert await client.exists(*(f"k{n}" for n in range(20))) == 0
        await honest(client)
    finally:
        await client.aclose()


# -- scripts ----------------------------------------------------------------------------------
async def test_salas_scripts_run_by_text_and_by_sha(hub: LocalHub, client: aioredis.Redis) -> None:
    """EVAL of the release script, EVALSHA of the sequence script (redis-py's Script), and
    SCRIPT LOAD/EXISTS name them by their SHA1."""
    sub = client.pubsub()
    await sub.subscribe("nsp")
    sequence = client.register_script(SEQUENCE_SCRIPT)
    assert await sequence(keys=["counter", "nsp"], args=[b"hello", 0]) == 1
    assert await sequence(keys=["counter", "nsp"], args=[b"again", 10]) == 11
    assert await _messages(sub, 2) == [b"1 hello", b"11 again"]
    await client.set("lock", "token")
    assert await client.eval(RELEASE_SCRIPT, 2, "lock", "waiting", "other", "free:", "r") == 0
    assert await client.eval(RELEASE_SCRIPT, 2, "lock", "waiting", "token", "free:", "r") == 1
    assert await client.get("lock") is None
    assert await client.script_load(RELEASE_SCRIPT) == sha1_of(RELEASE_SCRIPT)
    assert await client.script_exists(sha1_of(SEQUENCE_SCRIPT), "0" * 40) == [True, False]
    await sub.aclose()


async def test_an_unknown_script_is_refused(hub: LocalHub, client: aioredis.Redis) -> None:
    """EVAL of other Lua, EVALSHA of an unknown SHA1, SCRIPT LOAD of other Lua: errors; the
    connection serves on."""
    with pytest.raises(ResponseError, match="unknown script"):
        await client.eval("return redis.call('flushall')", 0)
    with pytest.raises(NoScriptError):
        await client.evalsha("0" * 40, 0)
    with pytest.raises(ResponseError, match="unknown script"):
        await client.script_load("return 1")
    with pytest.raises(ResponseError, match="Number of keys"):
        await client.eval(RELEASE_SCRIPT, 5, "lock")
    await honest(client)


# -- hostile input, beside an honest client ---------------------------------------------------
async def test_an_unknown_command_is_an_error_not_a_crash(
    hub: LocalHub, client: aioredis.Redis
) -> None:
    """Commands the hub does not serve answer -ERR unknown command; the same connection
    serves on."""
    for words in (("FLUSHALL",), ("KEYS", "*"), ("CONFIG", "GET", "*"), ("\r\n\x00",)):
        with pytest.raises(ResponseError, match="unknown command"):
            await client.execute_command(*words)
        await honest(client)
    with pytest.raises(ResponseError, match="wrong number of arguments"):
        await client.execute_command("GET")
    await honest(client)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"PING\r\n", b"-ERR Protocol error: invalid RESP"),
        (b"*1\r\n$4\r\nPING\r\n%%%garbage\r\n", b"-ERR Protocol error: invalid RESP"),
        (b":5\r\n", b"-ERR Protocol error: expected an array of bulk strings"),
        (b"*1\r\n*1\r\n$1\r\na\r\n", b"-ERR Protocol error: expected an array of bulk strings"),
        (b"*2\r\n$3\r\nGET\r\n:1\r\n", b"-ERR Protocol error: expected an array of bulk strings"),
    ],
)
async def test_malformed_resp_closes_that_connection_only(
    hub: LocalHub, client: aioredis.Redis, data: bytes, error: bytes
) -> None:
    """Bytes that are not RESP requests: an error, then that connection is closed (what came
    before is answered); other clients are untouched."""
    await honest(client)
    raw = await Raw.open(hub)
    try:
        await raw.send(data)
        answer = await raw.until_closed()
    finally:
        raw.close()
    assert answer.endswith(error + b"\r\n"), answer
    assert answer.startswith(b"+PONG\r\n") == data.startswith(b"*1\r\n$4\r\nPING")
    await honest(client)


async def test_a_huge_declared_bulk_is_cut_at_the_request_limit(start_hub: StartHub) -> None:
    """A bulk string declared terabytes long: the hub buffers at most its request limit, then
    closes the connection; an honest client sends a large value meanwhile."""
    hub = await start_hub(max_request=256 * 1024)
    client = aioredis.from_url(hub.url)
    raw = await Raw.open(hub)
    try:
        await raw.send(b"*2\r\n$3\r\nGET\r\n$999999999999\r\n")
        await honest(client)
        try:
            for _ in range(64):
                await raw.send(b"a" * 16384)
        except ConnectionError:
            pass  # closed under it
        answer = await raw.until_closed()
        assert answer in (b"-ERR Protocol error: request too large\r\n", b"(reset)"), answer
        assert await client.set("big", b"b" * 200_000) is True
        assert await client.get("big") == b"b" * 200_000
    finally:
        raw.close()
        await client.aclose()


async def test_a_request_begun_but_not_finished_times_out(start_hub: StartHub) -> None:
    """Half a request, then nothing: closed after the request timeout; an idle connection
    (no request begun) is not."""
    hub = await start_hub(request_timeout=0.3)
    client = aioredis.from_url(hub.url)
    idle, stalled = await Raw.open(hub), await Raw.open(hub)
    try:
        await idle.send(command("PING"))
        assert await idle.line() == b"+PONG\r\n"
        await stalled.send(b"*2\r\n$3\r\nGET\r\n$1\r\n")
        await honest(client)
        answer = await stalled.until_closed()
        assert answer == b"-ERR Protocol error: request not completed in time\r\n"
        await idle.send(command("PING"))  # idle past the timeout: still served
        assert await idle.line() == b"+PONG\r\n"
        await honest(client)
    finally:
        idle.close()
        stalled.close()
        await client.aclose()


async def test_connections_past_the_limit_are_refused(start_hub: StartHub) -> None:
    """At the limit, a new connection is answered -ERR max number of clients reached and
    closed; the open ones serve on, and a place freed is taken again."""
    hub = await start_hub(max_connections=2)
    first, second = await Raw.open(hub), await Raw.open(hub)
    extra = None
    try:
        for raw in (first, second):
            await raw.send(command("PING"))
            assert await raw.line() == b"+PONG\r\n"
        extra = await Raw.open(hub)
        assert await extra.until_closed() == b"-ERR max number of clients reached\r\n"
        extra.close()
        await first.send(command("PING"))
        assert await first.line() == b"+PONG\r\n"
        second.close()

        async def freed() -> bool:
            return len(hub.clients) == 1

        await eventually(freed, "a closed connection still counted")
        extra = await Raw.open(hub)
        await extra.send(command("PING"))
        assert await extra.line() == b"+PONG\r\n"
    finally:
        for raw in (first, second, extra):
            if raw is not None:
                raw.close()


async def test_a_subscriber_that_never_reads_is_disconnected(start_hub: StartHub) -> None:
    """A subscriber that stops reading: once its backlog passes the limit the hub drops it;
    an honest subscriber of the same channel gets every message, in order, and publishing
    goes on."""
    hub = await start_hub(max_pubsub_output=128 * 1024)
    publisher = aioredis.from_url(hub.url)
    reader = aioredis.from_url(hub.url)
    stuck = await Raw.open(hub)
    try:
        await stuck.send(command("SUBSCRIBE", "room"))
        assert await stuck.line() == b"*3\r\n"  # subscribed; it reads nothing more
        honest_sub = reader.pubsub()
        await honest_sub.subscribe("room")
        payload = b"p" * 16384
        got: list[bytes] = []
        for n in range(100):
            await publisher.publish("room", b"%d:" % n + payload)
            got += [
                m["data"]
                for m in [await honest_sub.get_message(ignore_subscribe_messages=True)]
                if m is not None
            ]

        async def dropped() -> bool:
            return bool(await publisher.pubsub_numsub("room") == [(b"room", 1)])

        await eventually(dropped, "the stuck subscriber was not dropped")
        got += await _messages(honest_sub, 100 - len(got))
        assert got == [b"%d:" % n + payload for n in range(100)]
        assert (await stuck.until_closed()).count(b"message") < 100
        await honest(publisher)
        await honest_sub.aclose()
    finally:
        stuck.close()
        await publisher.aclose()
        await reader.aclose()


# -- a cluster node on the hub ----------------------------------------------------------------
async def test_a_cluster_node_resubscribes_after_the_hub_drops_it(
    hub: LocalHub, client: aioredis.Redis
) -> None:
    """A `ClusterNode` on the hub: alive and listed; its subscription cut by the hub (as a
    subscriber too far behind is), it subscribes again and reads the next messages."""
    node = ClusterNode(hub.url, "test", heartbeat=0.2, ttl=1.0)
    got: list[dict[str, Any]] = []
    node.on_message["note"] = lambda sender, message: got.append(message)
    await node.start()
    try:
        assert await node.nodes() == [node.node_id]
        channel = node.channel.encode()
        for subscriber in [c for c in hub.clients if channel in c.channels]:
            assert subscriber.transport is not None
            subscriber.transport.abort()

        async def back() -> bool:
            counts = await client.pubsub_numsub(node.channel)
            return bool(counts == [(channel, 1)])

        await eventually(back, "the node did not subscribe again")
        await client.publish(node.channel, orjson.dumps({"kind": "note", "node": "other"}))

        async def delivered() -> bool:
            return bool(got)

        await eventually(delivered, "the node missed a message after resubscribing")
        assert (await node.health())["nodes"] == [node.node_id]
    finally:
        await node.close()
    assert await client.exists(f"test:alive:{node.node_id}") == 0


async def test_a_client_that_does_not_read_its_replies_is_not_read_from(
    hub: LocalHub, client: aioredis.Redis
) -> None:
    """Pipelined requests whose replies would be 200 MiB, from a client that reads nothing:
    the hub holds a bounded backlog for it and takes no more of its requests; an honest
    client is served meanwhile; once it reads, every reply arrives, in order."""
    await client.set("big", b"v" * (1024 * 1024))
    raw = await Raw.open(hub)
    try:
        await raw.send(command("GET", "big") * 200 + command("PING"))

        async def backlogged() -> bool:
            return any(
                c.paused and c.transport is not None and c.transport.get_write_buffer_size()
                for c in hub.clients
            )

        await eventually(backlogged, "the hub never stopped for the client that does not read")
        stuck = next(c for c in hub.clients if c.paused)
        assert stuck.transport is not None
        assert stuck.transport.get_write_buffer_size() < 4 * 1024 * 1024
        await honest(client)
        for _ in range(200):
            assert await raw.line() == b"$1048576\r\n"
            body = await asyncio.wait_for(raw.reader.readexactly(1024 * 1024 + 2), WAIT)
            assert body == b"v" * (1024 * 1024) + b"\r\n"
        assert await raw.line() == b"+PONG\r\n"
    finally:
        raw.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path (a Unix socket's path is limited to about 100 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="sh", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_a_killed_parents_directory_is_removed_at_the_next_start(short_dir: Path) -> None:
    """SIGKILL runs no cleanup: the hub's directory and socket stay. The next hub started
    removes such leftovers (their socket refuses connections), and leaves a live hub's
    directory and one without its socket yet (a hub starting now) alone."""
    stale = short_dir / "salas-hub-stale"
    stale.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(stale / "hub.sock"))  # bound, never listening, then closed: refused
    dead.close()
    starting = short_dir / "salas-hub-starting"
    starting.mkdir(mode=0o700)
    live = short_dir / "salas-hub-live"
    live.mkdir(mode=0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(live / "hub.sock"))
    listener.listen(1)
    other = short_dir / "not-a-hub"
    other.mkdir()
    try:
        assert remove_stale_directories(str(short_dir)) == 1
        assert not stale.exists()
        assert starting.exists() and live.exists() and other.exists()
    finally:
        listener.close()


async def test_start_sweeps_leftovers_of_the_temporary_directory(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(short_dir))
    stale = short_dir / "salas-hub-stale"
    stale.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(stale / "hub.sock"))
    dead.close()
    hub = LocalHub()
    await hub.start()
    try:
        assert not stale.exists()
        assert hub.path.startswith(str(short_dir))
    finally:
        await hub.close()
    assert list(short_dir.iterdir()) == []

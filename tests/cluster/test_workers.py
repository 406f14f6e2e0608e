"""`salas serve --workers 2` (salas.cluster.workers): the parent routes each connection to the
worker owning its sid, and the workers share one chat over Redis or, without --redis, over
the parent's local hub (salas.cluster.hub); driven by the official Node client, python-socketio,
raw HTTP and signals."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from salas.cluster.workers import HUB_FLAG, WORKER_FLAG, owner_of, parse_workers, sid_prefix
from tests.chat.chat_support import ChatClient
from tests.recovery.test_recovery_restart import Member
from tests.support.node import run_node
from tests.support.processes import SalasServe, salas_serve
from tests.support.services import REDIS_URL, probe_redis

SCRIPT = Path(__file__).parent / "js" / "cluster.js"


class _Any(dict[str, str]):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, dict)


_ANY_HEADERS = _Any()


# -- sids and counts ----------------------------------------------------------------------------
def test_owner_of_reads_the_prefix_of_every_worker() -> None:
    """A sid made with `sid_prefix(i)` names worker i; anything else names none."""
    for index in range(3):
        assert owner_of(sid_prefix(index) + "abcDEF_-", 3) == index
    for sid in ("", "abc", "3.abc", "x.abc", "-1.abc", ".abc", "99999.abc", "1"):
        assert owner_of(sid, 3) is None, sid


def test_parse_workers_takes_counts_and_auto() -> None:
    """`--workers` is a positive count or "auto" (the cores); other text is refused."""
    assert parse_workers("3") == 3
    assert parse_workers(" auto ") == (os.cpu_count() or 1)
    for raw in ("0", "-1", "two", "", "1.5", "5000"):
        with pytest.raises(ValueError):
            parse_workers(raw)


def test_a_worker_that_cannot_start_stops_the_parent_cleanly(tmp_path: Path) -> None:
    """Workers that cannot open the store: the parent exits 1 with the store's error, and
    nothing is logged as an unretrieved exception."""
    missing = tmp_path / "no such dir" / "chat.db"
    argv = [sys.executable, "-m", "salas", "serve", "--workers", "2", "--port", "0"]
    done = subprocess.run(
        [*argv, "--db", f"sqlite:///{missing}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "cannot open the store" in done.stderr
    assert "exited with 1 while starting" in done.stderr
    assert "never retrieved" not in done.stderr


# -- a live cluster -------------------------------------------------------------------------------
def _children(pid: int) -> dict[int, str]:
    """{pid: command line} of the processes whose parent is `pid`."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])
            if ppid == pid:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    found[int(entry)] = f.read().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
    return found


def _worker_pids(server: SalasServe) -> dict[int, int]:
    """{worker index: pid} of the server's live workers."""
    assert server.proc is not None
    pids = {}
    for pid, command in _children(server.proc.pid).items():
        if WORKER_FLAG in command:
            index = command.split(WORKER_FLAG, 1)[1].split()[0].partition(":")[0]
            pids[int(index)] = pid
    return pids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _hub_directory(server: SalasServe) -> str:
    """The directory of the local hub's socket, read from a worker's command line."""
    assert server.proc is not None
    for command in _children(server.proc.pid).values():
        if WORKER_FLAG in command and f"{HUB_FLAG} unix://" in command:
            url = command.split(f"{HUB_FLAG} unix://", 1)[1].split()[0]
            return os.path.dirname(url.partition("?")[0])
    raise AssertionError("no worker was given the local hub")


async def _start_workers(tmp_path: Path, shared: str) -> SalasServe:
    """`salas serve --workers 2` on a fresh SQLite file, sharing rooms over `shared`: "redis"
    (a prefix of its own) or "hub" (no --redis: the parent's local hub)."""
    flags = ["--workers", "2", "--message-rate", "0", "--timeout-head", "1"]
    if shared == "redis":
        probe_redis()
        flags += ["--redis", REDIS_URL, "--redis-prefix", f"salas-test:{uuid.uuid4().hex}"]
    server = salas_serve(tmp_path, *flags)
    await server.astart()
    return server


async def _stop_workers(server: SalasServe, workers: dict[int, int]) -> None:
    await server.astop()
    for pid in workers.values():
        assert not _alive(pid), f"worker {pid} outlived the parent"


@pytest.fixture(params=["hub", "redis"])
async def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[SalasServe]:
    """`salas serve --workers 2` sharing rooms over the local hub, then over Redis."""
    server = await _start_workers(tmp_path, request.param)
    workers = _worker_pids(server)
    try:
        yield server
    finally:
        await _stop_workers(server, workers)


@pytest.fixture
async def hub_cluster(tmp_path: Path) -> AsyncIterator[SalasServe]:
    """`salas serve --workers 2` without --redis (the parent's routing does not depend on
    what the workers share)."""
    server = await _start_workers(tmp_path, "hub")
    workers = _worker_pids(server)
    try:
        yield server
    finally:
        await _stop_workers(server, workers)


pytestmark = [pytest.mark.cluster]


@pytest.mark.node
@pytest.mark.parametrize("transport", ["polling", "websocket", "upgrade"])
async def test_a_room_spans_both_workers(cluster: SalasServe, transport: str) -> None:
    """Clients spread over both workers share one room for seconds of traffic: every message
    reaches every member once, per sender in order (polling: each request is routed by sid)."""
    result = await run_node(SCRIPT, cluster.url, "chat", transport, "6", "20", timeout=60)
    assert "error" not in result, result
    assert set(result["workers"]) == {0, 1}, result
    assert result["settled"], result
    expected = "polling" if transport == "polling" else "websocket"
    assert result["transports"] == [expected] * 6, result
    assert result["acked"] == 6 * 20, result
    assert result["received"] == [6 * 20] * 6, result
    assert result["in_order"], result
    assert all(result["connected"]), result


@pytest.mark.node
@pytest.mark.slow
async def test_a_killed_worker_is_restarted_and_its_clients_reconnect(
    cluster: SalasServe,
) -> None:
    """kill -9 of worker 0: its clients reconnect (to a live worker), the room works again for
    everyone, and the parent starts a new worker 0."""
    before = _worker_pids(cluster)
    assert set(before) == {0, 1}
    result = await run_node(SCRIPT, cluster.url, "kill", "upgrade", str(before[0]), timeout=60)
    assert "error" not in result, result
    assert set(result["before"]) == {0, 1} and result["victims"] >= 1, result
    assert set(result["reasons"]) <= {"transport close", "transport error"}, result
    assert result["ack"]["ok"], result
    assert result["everyone_got_it"], result
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = _worker_pids(cluster)
        if set(now) == {0, 1} and now[0] != before[0] and now[1] == before[1]:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail(f"worker 0 not restarted: {before} -> {_worker_pids(cluster)}")
    # Once ready, the new worker serves: handshakes reach it in turn.
    while (await _handshake(cluster))[0] != "0":
        assert time.monotonic() < deadline, "no handshake reaches the new worker 0"
        await asyncio.sleep(0.1)
    assert "worker 0 (pid" in cluster.log and "starting it again" in cluster.log


async def test_sigterm_stops_every_process(cluster: SalasServe) -> None:
    """SIGTERM to the parent stops both workers (each drains) and the parent exits 0; a local
    hub's socket and directory are gone with it."""
    workers = _worker_pids(cluster)
    assert set(workers) == {0, 1}
    hub = None if "--redis" in cluster.argv else _hub_directory(cluster)
    assert await cluster.astop() == 0
    for pid in workers.values():
        assert not _alive(pid)
    assert "Traceback" not in cluster.log
    assert hub is None or not os.path.exists(hub)


# -- one chat over both workers ------------------------------------------------------------------
async def _one_on_each_worker(url: str) -> list[ChatClient]:
    """A chat client on worker 0, then one on worker 1 (handshakes go to the workers in turn)."""
    found: dict[str, ChatClient] = {}
    for n in range(8):
        client = await ChatClient().connect(url, f"user{n}")
        worker = str(client.sio.eio.sid).partition(".")[0]
        if worker in found:
            await client.close()
        else:
            found[worker] = client
        if len(found) == 2:
            return [found["0"], found["1"]]
    raise AssertionError(f"every handshake went to worker(s) {sorted(found)}")


async def test_clients_on_two_workers_share_one_chat(cluster: SalasServe) -> None:
    """Members on different workers: the same members and counts from both, every message of
    both once and in id order for both, and one departure announced once."""
    ana, bo = await _one_on_each_worker(cluster.url)
    try:
        assert (await ana.call("channel_join", "lobby"))["ok"] is True
        view = await bo.call("channel_join", "lobby")
        names = sorted((ana.of("welcome")[0]["name"], bo.of("welcome")[0]["name"]))
        assert view["count"] == 2 and sorted(view["members"]) == names, view
        assert (await ana.call("channel_join", "lobby"))["members"] == view["members"]
        for client in (ana, bo):
            await client.next("rooms", lambda r: {"name": "lobby", "count": 2, "private": False}
                              in r["rooms"])  # fmt: skip

        async def post(client: ChatClient, tag: str) -> list[int]:
            ids = []
            for n in range(10):
                reply = await client.call("message", {"channel": "lobby", "message": f"{tag}{n}"})
                assert reply["ok"] is True, reply
                ids.append(reply["id"])
            return ids

        posted = await asyncio.gather(post(ana, "a"), post(bo, "b"))
        every = sorted(posted[0] + posted[1])
        for client in (ana, bo):
            await client.next("message", lambda m, c=client: len(c.of("message")) >= 20)
        for client in (ana, bo):
            assert [m["id"] for m in client.of("message")] == every
        mark = ana.mark()
        await bo.close()
        left = await ana.next("presence", lambda p: p["event"] == "left", after=mark)
        assert left["members"] == [ana.of("welcome")[0]["name"]]
        await ana.call("channel_join", "lobby")  # (a round trip: anything else has arrived)
        lefts = [d for e, d in ana.since(mark) if e == "presence" and d["event"] == "left"]
        assert len(lefts) == 1, lefts
    finally:
        await ana.close()
        await bo.close()


async def test_the_hub_is_private_and_every_worker_is_a_node(hub_cluster: SalasServe) -> None:
    """Without --redis: the hub's socket (0600) is in a directory of this user only (0700),
    and /healthz of either worker counts both nodes."""
    directory = _hub_directory(hub_cluster)
    info = os.stat(directory)
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
    assert os.listdir(directory) == ["hub.sock"]
    assert stat.S_IMODE(os.stat(os.path.join(directory, "hub.sock")).st_mode) == 0o600
    seen = set()
    for _ in range(4):  # (health checks go to the workers in turn)
        status, _, body = await _get(hub_cluster, "/healthz")
        health = orjson.loads(body)
        assert status == 200 and health["cluster"]["redis"] is True, health
        assert len(health["cluster"]["nodes"]) == 2, health
        seen.add(health["cluster"]["node"])
    assert len(seen) == 2


async def _events(member: Member, kind: str, count: int) -> list[dict[str, Any]]:
    """The member's first `count` events of `kind`, waiting for them (15 s at most)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while len(found := [e for e in member.events if e["type"] == kind]) < count:
        assert loop.time() < deadline, f"{len(found)} of {count} {kind!r}: {member.events}"
        await asyncio.sleep(0.05)
    return found


@pytest.mark.node
@pytest.mark.slow
async def test_a_client_of_a_killed_worker_is_recovered(hub_cluster: SalasServe) -> None:
    """kill -9 of the worker holding a member, mid-stream: the member reconnects through the
    parent, is recovered (same id, its room) and has every acked message once, in order —
    offsets and the recovery log shared through the local hub and the SQLite file."""
    member = await Member.start(hub_cluster.url)
    poster: ChatClient | None = None
    try:
        first = await member.expect("connect")
        assert first["recovered"] is False
        victim = int(first["engine"].partition(".")[0])
        member.send("join lobby")
        assert (await member.expect("joined"))["ok"] is True
        for n in range(8):
            candidate = await ChatClient().connect(hub_cluster.url, f"poster{n}")
            if str(candidate.sio.eio.sid).partition(".")[0] != str(victim):
                poster = candidate
                break
            await candidate.close()
        assert poster is not None, "every handshake went to the member's worker"
        assert (await poster.call("channel_join", "lobby"))["ok"] is True
        await asyncio.sleep(1.5)  # the member's session is written through meanwhile
        acked: list[str] = []

        async def post(texts: list[str]) -> None:
            assert poster is not None
            for text in texts:
                reply = await poster.call("message", {"channel": "lobby", "message": text})
                assert reply["ok"] is True, reply
                acked.append(text)

        await post([f"m{n}" for n in range(10)])
        os.kill(_worker_pids(hub_cluster)[victim], signal.SIGKILL)
        await post([f"m{n}" for n in range(10, 30)])
        again = (await _events(member, "connect", 2))[1]
        assert again["recovered"] is True and again["id"] == first["id"], member.events
        got = [e["message"] for e in await _events(member, "message", len(acked))]
        assert got == acked, member.events  # each once, in order
        offsets = [int(e["offset"]) for e in member.events if e["type"] == "message"]
        assert offsets == sorted(set(offsets))
    finally:
        await member.stop()
        if poster is not None:
            await poster.close()


# -- raw HTTP ----------------------------------------------------------------------------------
async def _request(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    target: str,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One GET (a POST with `body`) on an open connection: (status, headers, body)."""
    if body is None:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    else:
        head = f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers, body


async def _get(
    server: SalasServe, target: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request on a connection of its own (through the parent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        return await _request(reader, writer, target, body)
    finally:
        writer.close()


async def _handshake(server: SalasServe) -> tuple[str, str]:
    """A polling handshake on its own connection: (worker index, sid)."""
    status, _, body = await _get(server, "/socket.io/?EIO=4&transport=polling")
    assert status == 200, body
    sid = orjson.loads(body[1:])["sid"]
    return sid.partition(".")[0], sid


async def test_unknown_sids_get_400(hub_cluster: SalasServe) -> None:
    """Garbage, out-of-range and unknown sids are answered 400 "Session ID unknown"."""
    for sid in ("garbage", "7.abc", "1.unknown", "0.", "%00", "9" * 5000):
        status, _, body = await _get(hub_cluster, f"/socket.io/?EIO=4&transport=polling&sid={sid}")
        assert status == 400, (sid, body)
        assert orjson.loads(body) == {"code": 1, "message": "Session ID unknown"}


async def test_a_kept_alive_connection_reused_for_another_worker_is_closed(
    hub_cluster: SalasServe,
) -> None:
    """A connection of worker A asked about worker B's session: 400 with Connection: close
    (the client's next connection is routed by the parent, and works)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub_cluster.port)
    try:
        status, headers, body = await _request(
            reader, writer, "/socket.io/?EIO=4&transport=polling"
        )
        assert status == 200 and headers["connection"] == "keep-alive"
        mine = orjson.loads(body[1:])["sid"].partition(".")[0]
        other = ""
        for _ in range(10):
            index, sid = await _handshake(hub_cluster)
            if index != mine:
                other = sid
                break
        assert other, "every handshake went to one worker"
        status, headers, body = await _request(
            reader, writer, f"/socket.io/?EIO=4&transport=polling&sid={other}"
        )
        assert status == 400 and headers["connection"] == "close", (status, headers, body)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the worker
    finally:
        writer.close()
    target = f"/socket.io/?EIO=4&transport=polling&sid={other}"
    assert await _get(hub_cluster, target, b"40") == (200, _ANY_HEADERS, b"ok")


@pytest.mark.abuse
async def test_a_slow_head_does_not_block_the_parent(hub_cluster: SalasServe) -> None:
    """A client trickling its head holds only its own connection: others are routed at once,
    and the trickler is answered 408 once the head timeout (1 s here) has passed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub_cluster.port)
    try:
        started = time.monotonic()
        writer.write(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHo")
        await writer.drain()
        for _ in range(5):
            t0 = time.monotonic()
            status, _, _ = await _get(hub_cluster, "/healthz")
            assert status == 200
            assert time.monotonic() - t0 < 0.5
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert time.monotonic() - started < 3
    finally:
        writer.close()


@pytest.mark.abuse
async def test_an_endless_head_is_cut_at_the_parents_bound(hub_cluster: SalasServe) -> None:
    """A head that never ends (headers without limit) is refused 400 once the parent has read
    its bound, without reaching a worker; the hub_cluster serves on."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub_cluster.port)
    answer = b""
    try:
        writer.write(b"GET / HTTP/1.1\r\n")
        line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        for _ in range(200):
            writer.write(line)
            await writer.drain()
            await asyncio.sleep(0)
    except ConnectionError:
        pass  # cut off: what it still sent was reset away
    try:
        answer = await asyncio.wait_for(reader.read(), 5)
    except ConnectionError:
        answer = b"HTTP/1.1 400 (reset after the answer)"
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert (await _get(hub_cluster, "/healthz"))[0] == 200


async def test_sigterm_while_a_worker_restarts_still_exits_0(hub_cluster: SalasServe) -> None:
    """A worker killed just before SIGTERM is not started again; the parent exits 0."""
    workers = _worker_pids(hub_cluster)
    os.kill(workers[1], signal.SIGKILL)
    await asyncio.sleep(0.2)
    assert await hub_cluster.astop() == 0
    assert not any(_alive(pid) for pid in workers.values())


_ORPHAN = """
import asyncio, signal, socket, sys
from salas.cluster import workers

workers.ORPHAN_GRACE = 0.5
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a shutdown that never ends


class Engine:
    sid_prefix = ""
    misrouted = None


async def main():
    link = workers.WorkerLink(Engine(), 0, 2, int(sys.argv[1]))
    link.start()
    link.close()  # shutting down already (the parent's SIGTERM), and that shutdown hangs
    print("ready", flush=True)
    await asyncio.sleep(30)
    print("still alive", flush=True)


asyncio.run(main())
"""


def test_a_worker_whose_parent_is_gone_exits_even_if_its_shutdown_hangs() -> None:
    """The parent's end of the pair closes while the worker is shutting down and its shutdown
    never ends: it still exits (code 1) ORPHAN_GRACE seconds later instead of running on
    without a parent."""
    parent_end, worker_end = socket.socketpair()
    child = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN, str(worker_end.fileno())],
        pass_fds=[worker_end.fileno()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker_end.close()
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        began = time.monotonic()
        parent_end.close()
        assert child.wait(timeout=20) == 1
        assert time.monotonic() - began < 10
        assert "exiting" in child.stderr.read() if child.stderr else False
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

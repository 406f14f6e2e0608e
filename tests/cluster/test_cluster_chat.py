"""The chat as a cluster: 2-3 `salas serve --redis ... --db postgresql://...` processes, each
test on a PostgreSQL schema and a Redis prefix of its own; clients on different nodes see one
chat (messages, presence, typing, moderation, dedup, /healthz), a node killed with SIGKILL has
its members removed and announced once, and dropped Redis connections are made again."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from salas.cluster.node import DEFAULT_HEARTBEAT, DEFAULT_TTL
from tests.chat.chat_support import SECRET, ChatClient, token
from tests.support.node import run_node
from tests.support.processes import SalasServe, salas_serve
from tests.support.services import delete_redis_keys

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(120)]

JS = Path(__file__).parent / "js"
# A dead node's members are gone within its heartbeat's ttl and one check more; the rest is
# slack for a loaded machine.
DEAD_NODE_BOUND = DEFAULT_TTL + DEFAULT_HEARTBEAT + 4.0


class Cluster:
    """The nodes of one test, their Redis prefix and client name (to find their connections)."""

    def __init__(self, nodes: list[SalasServe], prefix: str, redis_url: str) -> None:
        self.nodes = nodes
        self.prefix = prefix
        self.redis_url = redis_url

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.nodes[index].port}"

    def healthz(self, index: int) -> dict[str, Any]:
        with urllib.request.urlopen(self.url(index) + "/healthz", timeout=5) as reply:
            body: dict[str, Any] = json.loads(reply.read())
            return body


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[str]:
    """A `--db` URL on a schema of this test's own, dropped afterwards."""
    schema = f"salas_test_{uuid.uuid4().hex[:12]}"
    yield f"{postgres_url}?schema={schema}"
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def start_cluster(
    tmp_path: Path, db: str, redis_url: str
) -> AsyncIterator[Callable[..., Awaitable[Cluster]]]:
    """Starts `n` nodes (extra flags for each); every one is stopped afterwards by its PID,
    and the test's Redis keys are deleted."""
    prefix = f"salas-test-{uuid.uuid4().hex[:12]}"
    # Every connection of the nodes carries this name: the reconnection test finds them by it.
    url = f"{redis_url.split('?')[0]}?client_name={prefix}"
    started: list[SalasServe] = []

    async def start(n: int, *flags: str) -> Cluster:
        nodes = [
            salas_serve(
                tmp_path,
                "--redis",
                url,
                "--redis-prefix",
                prefix,
                "--message-rate",
                "0",
                *flags,
                db=db,
            )
            for _ in range(n)
        ]
        started.extend(nodes)
        await asyncio.gather(*(node.astart() for node in nodes))
        cluster = Cluster(nodes, prefix, url)
        for _ in range(100):  # every node sees the others
            if all(len(cluster.healthz(i)["cluster"]["nodes"]) == n for i in range(n)):
                break
            await asyncio.sleep(0.1)
        return cluster

    yield start
    await asyncio.gather(*(node.astop() for node in started), return_exceptions=True)
    await delete_redis_keys(redis_url, prefix)


async def _joined(url: str, name: str, room: str, **auth: Any) -> ChatClient:
    client = await ChatClient().connect(url, auth={"name": name, **auth})
    reply = await client.call("channel_join", room)
    assert reply["ok"] is True, reply
    return client


async def _settle(seconds: float = 0.5) -> None:
    """Time for what crosses Redis (milliseconds) to arrive, with slack for a loaded machine."""
    await asyncio.sleep(seconds)


async def test_messages_reach_every_node_once(start_cluster: Any) -> None:
    """Three nodes post at once: every member, on every node (one on the official Node
    client), gets every message once, in the room's id order."""
    cluster = await start_cluster(3)
    members = [await _joined(cluster.url(i), f"m{i}", "lobby") for i in range(3)]
    per_node = 15
    total = 3 * per_node
    node_js = asyncio.create_task(
        run_node(
            JS / "cluster_member.js", cluster.url(2), "nodejs", "lobby", str(total), timeout=60
        )
    )
    await members[0].next("presence", lambda p: p["event"] == "joined" and p["user"] == "nodejs")

    async def post(index: int) -> list[int]:
        # Several in flight at once from each node, as a busy room has them.
        replies = await asyncio.gather(
            *(
                members[index].call("message", {"channel": "lobby", "message": f"n{index}-{k}"})
                for k in range(per_node)
            )
        )
        assert all(reply["ok"] is True for reply in replies), replies
        return [reply["id"] for reply in replies]

    posted = await asyncio.gather(*(post(i) for i in range(3)))
    all_ids = sorted(i for ids in posted for i in ids)
    for member in members:
        await member.next("message", lambda m, c=member: len(c.of("message")) >= total, timeout=20)
    await _settle()
    received_lists = [[m["id"] for m in member.of("message")] for member in members]
    from_js = await node_js
    assert "error" not in from_js, from_js
    received_lists.append([entry[0] for entry in from_js["messages"]])
    for received in received_lists:
        assert received == all_ids  # every message, once, in id order
    for member in members:
        await member.close()


async def test_presence_is_the_same_from_every_node(start_cluster: Any) -> None:
    """Members, counts, `name#2` and the rooms list agree on every node; one user's two
    sockets on two nodes are one member; a leave is announced once."""
    cluster = await start_cluster(2)
    ana = await _joined(cluster.url(0), "ana", "lobby")
    other_ana = await _joined(cluster.url(1), "ana", "lobby")  # another user, same name
    assert (await other_ana.call("channel_join", "lobby"))["name"] == "ana#2"
    reply = await ana.call("channel_join", "lobby")
    assert reply["members"] == ["ana", "ana#2"] and reply["count"] == 2
    await ana.next("presence", lambda p: p["event"] == "joined" and p["user"] == "ana#2")
    # The rooms list of each node counts the other's members.
    for client in (ana, other_ana):
        await client.next(
            "rooms", lambda r: {"name": "lobby", "count": 2, "private": False} in r["rooms"]
        )
    mark = ana.mark()
    await other_ana.call("channel_leave", "lobby")
    await ana.next("presence", lambda p: p["event"] == "left" and p["user"] == "ana#2", after=mark)
    await _settle()
    lefts = [d for e, d in ana.since(mark) if e == "presence" and d["event"] == "left"]
    assert len(lefts) == 1 and lefts[0]["members"] == ["ana"]
    view = await other_ana.call("channel_join", "lobby")
    assert view["members"] == ["ana", "ana#2"]
    await ana.close()
    await other_ana.close()


async def test_one_user_on_two_nodes_is_one_member(start_cluster: Any) -> None:
    """With token auth, one user's sockets on two nodes show one name and count once; the
    user leaves when the last of them does."""
    cluster = await start_cluster(2, "--jwt-secret", SECRET)
    watcher = await _joined(cluster.url(0), "w", "lobby", token=token("watcher", "Watcher"))
    first = await _joined(cluster.url(0), "x", "lobby", token=token("u1", "Uma"))
    second = await _joined(cluster.url(1), "x", "lobby", token=token("u1", "Uma"))
    view = await second.call("channel_join", "lobby")
    assert view["members"] == ["Uma", "Watcher"] and view["count"] == 2
    mark = watcher.mark()
    await first.close()
    await _settle()
    assert not [d for e, d in watcher.since(mark) if e == "presence"]  # still there
    await second.close()
    left = await watcher.next("presence", lambda p: p["event"] == "left", after=mark)
    assert left["user"] == "Uma" and left["members"] == ["Watcher"]
    await watcher.close()


async def test_typing_crosses_nodes(start_cluster: Any) -> None:
    """A typing indicator set on one node reaches members on another."""
    cluster = await start_cluster(2)
    typist = await _joined(cluster.url(0), "tia", "lobby")
    reader = await _joined(cluster.url(1), "rob", "lobby")
    assert (await typist.call("typing", {"channel": "lobby", "typing": True}))["ok"] is True
    note = await reader.next("typing", lambda t: t["typing"] is True)
    assert note["user"] == "tia" and note["channel"] == "lobby"
    await typist.close()
    await reader.close()


async def test_kick_and_ban_reach_every_node(start_cluster: Any) -> None:
    """A moderator on one node kicks, then bans, a user whose sockets are on the others: each
    socket is told and leaves; every node sees it once; the ban holds on every node."""
    cluster = await start_cluster(3, "--jwt-secret", SECRET)
    mod = await _joined(cluster.url(0), "m", "lobby", token=token("mod", "Mod", role="moderator"))
    watcher = await _joined(cluster.url(2), "w", "lobby", token=token("w", "Wes"))
    targets = [
        await _joined(cluster.url(i), "t", "lobby", token=token("troll", "Troll")) for i in (1, 2)
    ]
    await mod.next("presence", lambda p: p["user"] == "Troll")
    mark = watcher.mark()
    assert (await mod.call("kick", {"channel": "lobby", "user_id": "troll"}))["ok"] is True
    for target in targets:
        assert (await target.next("kicked"))["banned"] is False
    kicked = await watcher.next("presence", lambda p: p["event"] == "kicked", after=mark)
    assert kicked["user"] == "Troll" and kicked["members"] == ["Mod", "Wes"]
    await _settle()
    assert len([d for e, d in watcher.since(mark) if e == "presence"]) == 1
    for i in range(3):  # every node's view: the user is gone
        probe = await _joined(cluster.url(i), "p", "lobby", token=token(f"p{i}", f"P{i}"))
        assert "Troll" not in (await probe.call("channel_join", "lobby"))["members"]
        await probe.close()

    assert (await targets[0].call("channel_join", "lobby"))["ok"] is True
    await mod.next("presence", lambda p: p["event"] == "joined" and p["user"] == "Troll")
    ban = await mod.call("ban", {"channel": "lobby", "user_id": "troll"})
    assert ban["ok"] is True
    assert (await targets[0].next("kicked", lambda k: k["banned"] is True))["channel"] == "lobby"
    for target in targets:  # refused on every node
        refused = await target.call("channel_join", "lobby")
        assert refused["ok"] is False and refused["error"]["code"] == "banned"
    for client in (mod, watcher, *targets):
        await client.close()


async def test_client_id_retry_on_another_node_is_acked_not_broadcast(
    start_cluster: Any,
) -> None:
    """A message sent with a client_id through one node, then again through another: the
    retry is acked with the first id and members on both nodes get the message once."""
    cluster = await start_cluster(2)
    sender = await _joined(cluster.url(0), "sam", "lobby")
    retry = await _joined(cluster.url(1), "sam", "lobby")
    watchers = [await _joined(cluster.url(i), f"w{i}", "lobby") for i in range(2)]
    body = {"channel": "lobby", "message": "once", "client_id": "c-1"}
    first = await sender.call("message", body)
    second = await retry.call("message", body)
    assert first["ok"] and second["ok"] and second["id"] == first["id"]
    after = await sender.call("message", {"channel": "lobby", "message": "after"})
    for watcher in watchers:
        await watcher.next("message", lambda m: m["id"] == after["id"])
        assert [m["message"] for m in watcher.of("message")] == ["once", "after"]
    for client in (sender, retry, *watchers):
        await client.close()


async def test_healthz_reports_the_cluster(start_cluster: Any) -> None:
    """/healthz of each node: Redis reachable, its own id, every node alive."""
    cluster = await start_cluster(2)
    views = [cluster.healthz(i)["cluster"] for i in range(2)]
    assert all(view["redis"] is True for view in views)
    assert views[0]["nodes"] == views[1]["nodes"] and len(views[0]["nodes"]) == 2
    assert {view["node"] for view in views} == set(views[0]["nodes"])


async def test_killed_node_members_removed_and_announced_once(start_cluster: Any) -> None:
    """SIGKILL of a node: within the heartbeat's bound its members leave every other node's
    view, announced once; /healthz stops listing it."""
    cluster = await start_cluster(3)
    watchers = [await _joined(cluster.url(i), f"w{i}", "lobby") for i in range(2)]
    victim = await _joined(cluster.url(2), "vic", "lobby")
    await watchers[0].next("presence", lambda p: p["user"] == "vic")
    marks = [w.mark() for w in watchers]
    dead = cluster.nodes[2]
    assert dead.proc is not None
    dead.proc.send_signal(signal.SIGKILL)
    loop = asyncio.get_running_loop()
    began = loop.time()
    for watcher, mark in zip(watchers, marks, strict=True):
        left = await watcher.next(
            "presence", lambda p: p["event"] == "left", after=mark, timeout=DEAD_NODE_BOUND
        )
        assert left["user"] == "vic" and left["members"] == ["w0", "w1"]
    assert loop.time() - began < DEAD_NODE_BOUND
    await _settle(DEFAULT_HEARTBEAT * 2)
    for watcher, mark in zip(watchers, marks, strict=True):
        assert len([d for e, d in watcher.since(mark) if e == "presence"]) == 1
        await watcher.next(
            "rooms", lambda r: {"name": "lobby", "count": 2, "private": False} in r["rooms"]
        )
    assert len(cluster.healthz(0)["cluster"]["nodes"]) == 2
    await victim.sio.disconnect()
    for watcher in watchers:
        await watcher.close()


async def test_nodes_resubscribe_after_their_redis_connections_drop(start_cluster: Any) -> None:
    """Every Redis connection of the nodes killed (CLIENT KILL by id, theirs only): they
    reconnect and resubscribe by themselves; messages and presence cross again."""
    cluster = await start_cluster(2)
    ana = await _joined(cluster.url(0), "ana", "lobby")
    bob = await _joined(cluster.url(1), "bob", "lobby")
    client = aioredis.from_url(cluster.redis_url.split("?")[0])
    try:
        listed = await client.client_list()
        ours = [c["id"] for c in listed if c.get("name") == cluster.prefix]
        assert len(ours) >= 4  # each node: its adapter's and its own subscription, commands
        for client_id in ours:
            await client.client_kill_filter(_id=client_id)
    finally:
        await client.aclose()
    deadline = asyncio.get_running_loop().time() + 15
    text = ""
    while True:  # until a message crosses again (one sent while reconnecting may fail)
        text = f"again-{asyncio.get_running_loop().time()}"
        sent = await ana.call("message", {"channel": "lobby", "message": text})
        try:
            assert sent["ok"] is True, sent
            await bob.next("message", lambda m, t=text: m["message"] == t, timeout=0.5)
            break
        except AssertionError:
            assert asyncio.get_running_loop().time() < deadline, cluster.nodes[0].log_tail()
            await asyncio.sleep(0.2)
    carol = await _joined(cluster.url(1), "carol", "lobby")
    await ana.next("presence", lambda p: p["event"] == "joined" and p["user"] == "carol")
    assert cluster.healthz(0)["cluster"]["redis"] is True
    for c in (ana, bob, carol):
        await c.close()

"""Micro-benchmark: what one chat message costs in `salas serve`'s chat, with no network.

The chat app as ``salas serve`` builds it — SQLite message store, recovery log and bans in
one file, the bench targets' limits (per-client event budget off, inbound budget raised) —
runs on the real objects, with every connection's transport replaced by
:class:`bench.micro_relay.SinkTransport`. 1000 clients are opened and joined to 100 rooms of
10 through real upgrade requests and masked frames, then every client sends in turn
(``--batch`` messages per loop iteration) at ``--rate`` messages per second of wall-clock
time, as the load generator does, so that group commits form as under that load.

It reports, per inbound message (10 deliveries), medians of ``--runs`` runs:

- ``process_us``: CPU time of the whole process (the loop and the SQLite threads);
- ``loop_us``: CPU time of the event loop's thread alone;
- ``writes_per_delivery``: transport writes per delivered message (below 1: frames due to
  one connection shared a write);
- ``gc_collections`` per 1000 messages (by generation) and ``gc_us`` per message;
- ``messages_per_commit`` of the message store.

Variants: ``--store memory`` (no SQLite); ``--gc python`` (CPython's collector defaults
instead of what ``salas serve`` sets, :mod:`salas.server.gc_tuning`) or ``--gc A,B,C``
(``gc.set_threshold``); ``--write-interval MS`` (the engine's write pacing); ``--redis URL``
(the chat as one node of a cluster over that Redis, as ``salas serve --redis`` runs it);
``--nodes K`` with it: K such nodes in this one process, sharing the file, client i on node
i % K — the CPU per message of a whole K-node cluster (Redis's own excepted) on one core,
whose ratio to one node's says how far K workers on K cores could scale. ``--db URL`` puts
the store elsewhere (``postgresql://127.0.0.1:5432/test?schema=bench_micro``, as several
machines would share it); the default is a SQLite file in a temporary folder.

    .venv/bin/python -m bench.micro_chat
    .venv/bin/python -m bench.micro_chat --rate 8000 --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.micro_relay import (
    BENCH_LIMITS,
    TEXT,
    Clients,
    CollectorWatch,
    masked_frame,
    settle,
)
from salas.chat.app import ChatApp, create_app
from salas.chat.config import ChatConfig
from salas.recovery import open_recovery_store
from salas.server.gc_tuning import tune_for_serving
from salas.store import open_ban_store, open_store

__all__ = ["main", "run"]

ROOMS, ROOM_SIZE = 100, 10


async def chat_app(
    db: str, write_interval: float = 0.0, redis: str | None = None, prefix: str = "salas-micro"
) -> ChatApp:
    """The chat on `db` (a store URL) as `salas serve` makes it, with the bench's limits;
    with `redis`, as one node of a cluster over that Redis (`salas serve --redis`) whose keys
    and channels start with `prefix`."""
    cluster = None
    if redis is not None:
        from salas.cluster.node import ClusterNode

        cluster = ClusterNode(redis, prefix)
    # A cluster node commits without pacing, as `salas serve --redis` opens its store.
    store = open_store(db, commit_interval=0.0 if cluster is not None else None)
    await store.open()
    bans = open_ban_store(db)
    await bans.open()
    recovery = open_recovery_store(db) if not db.startswith("memory:") else None
    app = create_app(
        ChatConfig(message_rate=0.0),
        store,
        recovery,
        server_options={**BENCH_LIMITS, "serve_client": False, "write_interval": write_interval},
        bans=bans,
        cluster=cluster,
    )
    await app.open()
    return app


class Cluster:
    """The chat's nodes (one without --redis) and their clients, client i on node i % K."""

    def __init__(self, apps: list[ChatApp]) -> None:
        self.apps = apps
        self.clients = [Clients(app.io) for app in apps]
        self.conns: list[Any] = []

    async def open(self) -> None:
        """Open the clients (node by node) and join them to their rooms."""
        nodes = len(self.apps)
        total = ROOMS * ROOM_SIZE
        for k, clients in enumerate(self.clients):
            count = len(range(k, total, nodes))
            await clients.open(count, lambda j, k=k: f"room-{(j * nodes + k) % ROOMS}")
        if nodes > 1:
            # The other nodes learn of the joins: presence, then the rooms lists (coalesced
            # over the rooms interval), before anything is measured.
            await self.quiet(2 * self.apps[0].config.rooms_interval)
        self.conns = [self.clients[i % nodes].conns[i // nodes] for i in range(total)]

    def writes(self) -> int:
        return sum(clients.writes() for clients in self.clients)

    def inflight(self) -> bool:
        return any(app.messages._inflight for app in self.apps)

    async def quiet(self, still: float = 0.05) -> None:
        """Wait until no transport has been written to for `still` seconds."""
        last = -1
        while (now := self.writes()) != last:
            last = now
            await asyncio.sleep(still)


async def feed(cluster: Cluster, messages: int, batch: int, rate: float) -> None:
    """Send `messages` from every client in turn, `batch` per loop iteration, at `rate`/s;
    return once each is stored and broadcast (on every node)."""
    frame = masked_frame('42["message","' + TEXT + '"]')
    conns = cluster.conns
    loop = asyncio.get_running_loop()
    began = loop.time()
    position = 0
    for sent in range(0, messages, batch):
        for _ in range(batch):
            conns[position].data_received(frame)
            position = (position + 1) % len(conns)
        due = began + (sent + batch) / rate - loop.time()
        await asyncio.sleep(max(0.0, due))
    while cluster.inflight():
        await asyncio.sleep(0.001)
    await settle()
    if len(cluster.apps) > 1:
        await cluster.quiet()


def _commits(cluster: Cluster) -> int:
    """Transactions the message stores committed (0 for memory, which has none)."""
    return sum(int(getattr(app.store, "batches_committed", 0)) for app in cluster.apps)


async def measure(cluster: Cluster, messages: int, batch: int, rate: float) -> dict[str, float]:
    """One run: the figures of the module's list, per message."""
    commits0 = _commits(cluster)
    writes0 = cluster.writes()
    p0, t0 = time.process_time_ns(), time.thread_time_ns()
    with CollectorWatch() as collector:
        await feed(cluster, messages, batch, rate)
    p1, t1 = time.process_time_ns(), time.thread_time_ns()
    commits = _commits(cluster) - commits0
    collections = collector.collections
    return {
        "process_us": (p1 - p0) / 1000 / messages,
        "loop_us": (t1 - t0) / 1000 / messages,
        "writes_per_delivery": (cluster.writes() - writes0) / (messages * ROOM_SIZE),
        "gc0": collections[0] * 1000 / messages,
        "gc1": collections[1] * 1000 / messages,
        "gc2": collections[2] * 1000 / messages,
        "gc_us": sum(collector.ns) / 1000 / messages,
        "messages_per_commit": messages / commits if commits else 0.0,
    }


async def run(
    db: str,
    runs: int,
    messages: int,
    batch: int,
    rate: float,
    write_interval: float,
    redis: str | None = None,
    nodes: int = 1,
) -> dict[str, Any]:
    """Open the chat (`nodes` cluster nodes over `redis`, sharing `db`) and its clients,
    then `runs` measured runs: medians of each figure."""
    if nodes > 1 and redis is None:
        raise ValueError("several nodes need --redis")
    prefix = f"salas-micro:{secrets.token_hex(4)}"
    apps = [await chat_app(db, write_interval, redis, prefix) for _ in range(nodes)]
    try:
        cluster = Cluster(apps)
        await cluster.open()
        await feed(cluster, min(messages, 2000), batch, rate)  # warm-up
        rows = [await measure(cluster, messages, batch, rate) for _ in range(runs)]
        return {key: round(statistics.median(r[key] for r in rows), 3) for key in rows[0]}
    finally:
        for app in apps:
            await app.shutdown()
            await app.store.close()
            await app.bans.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--db", help="a store URL instead (postgresql://...?schema=...)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=8, help="messages per loop iteration")
    parser.add_argument("--rate", type=float, default=4000.0, help="messages per second")
    parser.add_argument(
        "--gc", default="serving", help="serving (salas serve's), python (defaults) or A,B,C"
    )
    parser.add_argument(
        "--write-interval", type=float, default=0.0, help="ms (salas serve --write-interval)"
    )
    parser.add_argument("--redis", help="run the chat as a cluster node over this Redis URL")
    parser.add_argument(
        "--nodes", type=int, default=1, help="cluster nodes in this process (needs --redis)"
    )
    args = parser.parse_args(argv)
    if args.gc == "serving":
        tune_for_serving()
    elif args.gc != "python":
        gc.set_threshold(*(int(part) for part in args.gc.split(",")))
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{Path(tmp) / 'chat.db'}" if args.store == "sqlite" else "memory://"
        db = args.db or db
        result = uvloop.run(
            run(
                db,
                args.runs,
                args.messages,
                args.batch,
                args.rate,
                args.write_interval / 1000,
                args.redis,
                args.nodes,
            )
        )
    result.update(
        store=args.store,
        rate=args.rate,
        gc=args.gc,
        write_interval_ms=args.write_interval,
        redis=args.redis is not None,
        nodes=args.nodes,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

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
(the chat as one node of a cluster over that Redis, as ``salas serve --redis`` runs it).

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


async def chat_app(db: str, write_interval: float = 0.0, redis: str | None = None) -> ChatApp:
    """The chat on `db` (a store URL) as `salas serve` makes it, with the bench's limits;
    with `redis`, as one node of a cluster over that Redis (`salas serve --redis`), under a
    prefix of its own."""
    cluster = None
    if redis is not None:
        from salas.cluster.node import ClusterNode

        cluster = ClusterNode(redis, f"salas-micro:{secrets.token_hex(4)}")
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


async def feed(app: ChatApp, clients: Clients, messages: int, batch: int, rate: float) -> None:
    """Send `messages` from every client in turn, `batch` per loop iteration, at `rate`/s;
    return once each is stored and broadcast."""
    frame = masked_frame('42["message","' + TEXT + '"]')
    conns = clients.conns
    loop = asyncio.get_running_loop()
    began = loop.time()
    position = 0
    for sent in range(0, messages, batch):
        for _ in range(batch):
            conns[position].data_received(frame)
            position = (position + 1) % len(conns)
        due = began + (sent + batch) / rate - loop.time()
        await asyncio.sleep(max(0.0, due))
    while app.messages._inflight:
        await asyncio.sleep(0.001)
    await settle()


def _commits(app: ChatApp) -> int:
    """Transactions the message store committed (0 for memory, which has none)."""
    return int(getattr(app.store, "batches_committed", 0))


async def measure(
    app: ChatApp, clients: Clients, messages: int, batch: int, rate: float
) -> dict[str, float]:
    """One run: the figures of the module's list, per message."""
    commits0 = _commits(app)
    writes0 = clients.writes()
    p0, t0 = time.process_time_ns(), time.thread_time_ns()
    with CollectorWatch() as collector:
        await feed(app, clients, messages, batch, rate)
    p1, t1 = time.process_time_ns(), time.thread_time_ns()
    commits = _commits(app) - commits0
    collections = collector.collections
    return {
        "process_us": (p1 - p0) / 1000 / messages,
        "loop_us": (t1 - t0) / 1000 / messages,
        "writes_per_delivery": (clients.writes() - writes0) / (messages * ROOM_SIZE),
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
) -> dict[str, Any]:
    """Open the chat and its clients, then `runs` measured runs: medians of each figure."""
    app = await chat_app(db, write_interval, redis)
    try:
        clients = Clients(app.io)
        await clients.open(ROOMS * ROOM_SIZE, lambda i: f"room-{i % ROOMS}")
        await feed(app, clients, min(messages, 2000), batch, rate)  # warm-up
        rows = [await measure(app, clients, messages, batch, rate) for _ in range(runs)]
        return {key: round(statistics.median(r[key] for r in rows), 3) for key in rows[0]}
    finally:
        await app.shutdown()
        await app.store.close()
        await app.bans.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
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
    args = parser.parse_args(argv)
    if args.gc == "serving":
        tune_for_serving()
    elif args.gc != "python":
        gc.set_threshold(*(int(part) for part in args.gc.split(",")))
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{Path(tmp) / 'chat.db'}" if args.store == "sqlite" else "memory://"
        result = uvloop.run(
            run(
                db,
                args.runs,
                args.messages,
                args.batch,
                args.rate,
                args.write_interval / 1000,
                args.redis,
            )
        )
    result.update(
        store=args.store,
        rate=args.rate,
        gc=args.gc,
        write_interval_ms=args.write_interval,
        redis=args.redis is not None,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

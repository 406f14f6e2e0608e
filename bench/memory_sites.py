"""Memory per idle websocket connection, by allocation site (``tracemalloc``).

The ``idle`` scenario (``bench/scenarios.py``) measures the server's RSS with 1k and 10k idle
clients; this program says where those bytes are. It runs ``salas serve`` itself (the CLI's
``serve`` coroutine, the settings the ``salas-chat`` bench target uses: ``--db`` a fresh
SQLite file, the connection limits off, the event budget off unless ``--env`` says otherwise)
or the seed relay (``--app relay``: ``examples/seed.py``'s handlers, as ``bench.micro_relay``
builds them) in this process, on the
same loop as ``salas serve`` (uvloop when installed), with ``tracemalloc`` on. The C load
generator (``bench/loadgen``) opens real websocket clients over loopback, as the ``idle``
scenario does; after ``--clients`` of them and again after twice as many, the heap is
snapshotted (after a full garbage collection), and the difference, per connection, is
printed by the line that allocated it (``--group file`` sums by file).

    .venv/bin/python -m bench.memory_sites                     # the chat, 1000 -> 2000 clients
    .venv/bin/python -m bench.memory_sites --app relay
    .venv/bin/python -m bench.memory_sites --env SALAS_MESSAGE_RATE=10 --top 40

``tracemalloc`` sees what Python allocates (objects and ``PyMem`` buffers, uvloop's and
libuv's handles included), not what C libraries allocate with ``malloc`` nor the allocator's
own slack, so its total is below the RSS figure of the ``idle`` scenario; the RSS the process
grew by (with ``tracemalloc``'s own bookkeeping in it) is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import linecache
import os
import signal
import socket
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.driver import LoadGen, build

__all__ = ["main", "site_table"]

ROOT = Path(__file__).resolve().parents[1]
# The salas-chat bench target's environment (bench/targets.py), the event budget included.
CHAT_ENV = {
    "SALAS_MESSAGE_RATE": "0",
    "SALAS_INBOUND_RATE": "1000000",
    "SALAS_INBOUND_BURST": "1000000",
    "SALAS_MAX_CONNECTIONS": "0",
    "SALAS_MAX_CONNECTIONS_PER_IP": "0",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _where(frame: tracemalloc.Frame) -> str:
    name = frame.filename
    for marker in ("/src/", "/site-packages/", "/lib/python3"):
        if marker in name:
            name = name.split(marker, 1)[1]
            break
    return name


def site_table(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, per: int, group: str, top: int
) -> list[dict[str, Any]]:
    """The sites whose memory grew most between the snapshots, in bytes per connection."""
    key = {"file": "filename", "line": "lineno", "traceback": "traceback"}[group]
    rows = []
    for stat in after.compare_to(before, key)[:top]:
        # (tracemalloc keeps the most recent frame last)
        frame = stat.traceback[-1] if group == "traceback" else stat.traceback[0]
        row: dict[str, Any] = {
            "bytes_per_conn": round(stat.size_diff / per, 1),
            "blocks_per_conn": round(stat.count_diff / per, 2),
            "site": _where(frame) + ("" if group == "file" else f":{frame.lineno}"),
        }
        if group != "file":
            row["line"] = linecache.getline(frame.filename, frame.lineno).strip()[:90]
        if group == "traceback":
            row["callers"] = [f"{_where(f)}:{f.lineno}" for f in stat.traceback[:-1]]
        rows.append(row)
    return rows


def _snapshot() -> tracemalloc.Snapshot:
    gc.collect()
    return tracemalloc.take_snapshot().filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<unknown>"))
    )


async def _wait_listening(port: int, serving: asyncio.Future[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if serving.done():
            serving.result()  # what made it stop
            raise RuntimeError("the server stopped before it listened")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listening on port {port}") from None
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return


async def _relay(port: int) -> None:
    from bench.micro_relay import relay_server

    await relay_server().serve("127.0.0.1", port)


async def _measure(args: argparse.Namespace, port: int, serving: asyncio.Future[Any]) -> Result:
    await _wait_listening(port, serving)
    n = args.clients
    loadgen = await asyncio.to_thread(LoadGen, port, server_pid=os.getpid(), cpu=None, src_addrs=4)
    try:
        points: list[tuple[int, tracemalloc.Snapshot, int]] = []
        counts: list[collections.Counter[str]] = []
        for target in (n, 2 * n):
            got = await asyncio.to_thread(loadgen.command, f"connect {target} 0 120", 150)
            if got.get("ready", 0) < target:
                raise RuntimeError(f"only {got.get('ready')} of {target} clients connected")
            await asyncio.to_thread(loadgen.command, f"hold {args.settle}", args.settle + 30)
            points.append((target, _snapshot(), _rss_kib()))
            if args.types:
                counts.append(collections.Counter(type(o).__qualname__ for o in gc.get_objects()))
    finally:
        await asyncio.to_thread(loadgen.close)
    (_, before, rss0), (_, after, rss1) = points
    traced = sum(s.size_diff for s in after.compare_to(before, "filename")) / n
    result: Result = {
        "app": args.app,
        "clients": [n, 2 * n],
        "traced_bytes_per_conn": round(traced, 1),
        "rss_kib_per_conn_with_tracemalloc": round((rss1 - rss0) / n, 2),
        "sites": site_table(before, after, n, args.group, args.top),
    }
    if counts:
        grown = counts[1] - counts[0]
        result["objects_per_conn"] = {k: round(v / n, 2) for k, v in grown.most_common(args.top)}
    return result


Result = dict[str, Any]


def _print_table(result: Result) -> None:
    print(
        f"{result['app']}: {result['traced_bytes_per_conn']:.0f} traced bytes per connection "
        f"({result['clients'][0]} -> {result['clients'][1]} clients; RSS with tracemalloc "
        f"{result['rss_kib_per_conn_with_tracemalloc']} KiB)"
    )
    for row in result["sites"]:
        size, blocks = row["bytes_per_conn"], row["blocks_per_conn"]
        print(f"{size:8.1f} B {blocks:6.2f}  {row['site']:42} {row.get('line', '')}")
        for caller in reversed(row.get("callers", ())):
            print(f"{'':18}<- {caller}")
    if "objects_per_conn" in result:
        print("objects the garbage collector tracks, per connection:")
        for name, count in result["objects_per_conn"].items():
            print(f"{count:8.2f}  {name}")


async def _run(args: argparse.Namespace) -> Result:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="salas-memory-") as tmp:
        if args.app == "chat":
            from salas.cli import parse_settings, serve

            env = {**CHAT_ENV, **dict(kv.split("=", 1) for kv in args.env)}
            argv = ["serve", "--port", str(port), "--db", f"sqlite:///{tmp}/chat.db"]
            _, settings = parse_settings([*argv, *args.serve_args], env)
            serving = asyncio.ensure_future(serve(settings))
        else:
            serving = asyncio.ensure_future(_relay(port))
        try:
            result = await _measure(args, port, serving)
        finally:
            if not serving.done():
                signal.raise_signal(signal.SIGTERM)  # until_stopped ends; the server shuts down
            await asyncio.wait_for(serving, 30)
    return result


def main(argv: list[str] | None = None) -> int:
    """Print the sites (a table, or JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", choices=("chat", "relay"), default="chat")
    parser.add_argument("--clients", type=int, default=1000, help="clients; then twice as many")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds held before a snapshot")
    parser.add_argument("--frames", type=int, default=1, help="traceback depth tracemalloc keeps")
    parser.add_argument("--group", choices=("line", "file", "traceback"), default="line")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for salas serve")
    parser.add_argument("--types", action="store_true", help="also count objects by type")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("serve_args", nargs="*", help="more `salas serve` flags (after --)")
    args = parser.parse_args(argv)
    build()
    tracemalloc.start(args.frames)
    from salas.server.server import run_loop

    result = run_loop(_run(args))
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        _print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Micro-benchmark: the relay's per-message path, step by step, with no network.

The seed relay (``examples/seed.py``'s handlers, the bench limits of
``bench/servers/salas_relay.py``) runs on the real objects — ``HttpConnection`` →
``WebSocket`` → ``EngineSession`` → ``Client`` → ``Socket`` handler → ``BroadcastOperator``
→ ``MemoryAdapter`` → recipients' sessions → the flush scheduler — with every transport
replaced by a sink that counts what it is given. Clients are opened and joined to rooms
through the same path (a real upgrade request, masked frames), then the measured traffic
is replayed: chat-like (100 rooms x 10, every client sending in turn, ``--batch`` messages
per loop iteration) or fan-out (1 room x 1000, one sender).

Each mode enters the path one layer lower, so the differences between modes are the cost
of each step (µs per inbound message; for fan-out, per delivery as well):

=========  ======================================================================
mode       what one message costs from there on
=========  ======================================================================
full       transport bytes (a masked frame) → … → writes, the loop's turns included
ws         the websocket's message callback (frame parsed and UTF-8 decoded)
engine     the session's message callback (Engine.IO packet decoded, budget spent)
socket     ``Socket.on_packet`` (Socket.IO packet decoded, namespace found)
emit       the handler's ``io.to(room).emit(...)`` run by hand (no task, no dispatch)
deliver    ``adapter.deliver`` of a pre-encoded message (the per-recipient loop)
flush      the end-of-iteration flush alone (``flush`` column of every mode)
=========  ======================================================================

Times are this thread's CPU time (``time.thread_time_ns``) over many iterations; each
figure is the median of ``--runs`` runs. Prints one JSON object (and a table with ``--table``).

    .venv/bin/python -m bench.micro_relay --table
    .venv/bin/python -m bench.micro_relay --scenario fanout --table
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import os
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

from salas import Server
from salas.adapter.base import BroadcastOptions
from salas.protocol.outgoing import EncodedMessage
from salas.protocol.socketio import SocketPacket, SocketPacketType

__all__ = ["CollectorWatch", "SinkTransport", "main", "masked_frame", "run"]

BENCH_LIMITS: dict[str, Any] = {
    "max_connections": 0,
    "max_connections_per_ip": 0,
    "inbound_rate": 1_000_000.0,
    "inbound_burst": 1_000_000,
}
TEXT = "@@A" + "0" * 19 + ":" + "1234" + ":" + "x" * 21  # 48 characters, as the load generator's
MASK = b"\x12\x34\x56\x78"
# CPU time of this thread, not wall time: on a shared machine the process may wait for a core
# mid-measure, and that wait is not the code's cost.
CLOCK = time.thread_time_ns


class SinkTransport:
    """Stands for an asyncio transport: counts writes and bytes, sends nothing."""

    __slots__ = ("bytes", "closed", "writes")

    def __init__(self) -> None:
        self.writes = 0
        self.bytes = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.bytes += len(data)

    def writelines(self, chunks: list[bytes]) -> None:
        self.writes += 1
        for chunk in chunks:
            self.bytes += len(chunk)

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        return None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None


def masked_frame(text: str, mask: bytes = MASK) -> bytes:
    """A client's text frame (clients always mask theirs)."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        head = bytes((0x81, 0x80 | length))
    else:
        head = bytes((0x81, 0x80 | 126)) + length.to_bytes(2, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def relay_server() -> Server:
    """``examples/seed.py``'s server and handlers, with the bench limits."""
    io = Server(cors_origins="*", serve_client=False, **BENCH_LIMITS)

    @io.on("connection")
    async def connection(socket: Any) -> None:
        @socket.on("channel_join")
        async def channel_join(channel: str) -> None:
            if socket.data.get("room"):
                await socket.leave(socket.data["room"])  # single-room mode
            await socket.join(channel)
            socket.data["room"] = channel

        @socket.on("message")
        async def message(text: str) -> None:
            room = socket.data["room"]
            await io.to(room).emit("message", {"channel": room, "message": text})

    return io


class Clients:
    """Clients opened through the real path, each with its connection, session and socket."""

    def __init__(self, io: Server) -> None:
        self.io = io
        self.conns: list[Any] = []
        self.sinks: list[SinkTransport] = []

    async def open(self, count: int, room_of: Callable[[int], str]) -> None:
        engine = self.io.engine
        key = base64.b64encode(os.urandom(16)).decode()
        upgrade = (
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        for i in range(count):
            conn = engine.protocol_factory()
            sink = SinkTransport()
            conn.connection_made(sink)
            conn.data_received(upgrade)
            conn.data_received(masked_frame("40"))
            self.conns.append(conn)
            self.sinks.append(sink)
            if i % 100 == 99:
                await settle()
        await settle()
        for i, conn in enumerate(self.conns):
            conn.data_received(masked_frame(f'42["channel_join","{room_of(i)}"]'))
        await settle()
        sockets = self.io.sockets.sockets
        assert len(sockets) == count, f"{len(sockets)} of {count} clients connected"
        self.sockets = [s for s in sockets.values()]
        by_session = {id(s.session): s for s in self.sockets}
        self.sockets = [by_session[id(c._stream.on_message.__self__)] for c in self.conns]

    def writes(self) -> int:
        return sum(s.writes for s in self.sinks)


async def settle() -> None:
    """Let the loop run what is due (flushes, tasks' steps and done callbacks)."""
    for _ in range(3):
        await asyncio.sleep(0)


def flush_now(io: Server) -> None:
    """Run the end-of-iteration flush now (what the scheduler's call_soon would run)."""
    scheduler = io.engine.scheduler
    if scheduler._scheduled:
        scheduler._flush_all()


async def measure(
    io: Server,
    clients: Clients,
    mode: str,
    senders: list[int],
    batch: int,
    messages: int,
) -> dict[str, float]:
    """ns per message of the inbound part, the flush part and the loop's turns."""
    data = json.dumps(["message", TEXT], separators=(",", ":"))
    frame = masked_frame("42" + data)
    text = "42" + data
    packet = SocketPacket(SocketPacketType.EVENT, "/", ["message", TEXT])
    adapter = io.sockets.adapter
    steps: list[Callable[[], None]] = []
    for index in senders:
        socket = clients.sockets[index]
        conn = clients.conns[index]
        room = socket.data["room"]
        if mode == "full":
            steps.append(lambda conn=conn: conn.data_received(frame))
        elif mode == "ws":
            ws = conn._stream
            steps.append(lambda ws=ws: ws.on_message(text))
        elif mode == "engine":
            session = socket.session
            steps.append(lambda s=session: s.on_message(text[1:]))
        elif mode == "socket":
            steps.append(lambda s=socket: s.on_packet(packet))
        elif mode == "emit":

            def emit(room: str = room) -> None:
                coro = io.to(room).emit("message", {"channel": room, "message": TEXT})
                with contextlib.suppress(StopIteration):
                    coro.send(None)

            steps.append(emit)
        elif mode == "deliver":
            opts = BroadcastOptions(frozenset((room,)))
            encoded = EncodedMessage.of_socket_packet(
                SocketPacket(
                    SocketPacketType.EVENT, "/", ["message", {"channel": room, "message": TEXT}]
                )
            )
            steps.append(lambda m=encoded, o=opts: adapter.deliver(m, o))
        else:
            raise ValueError(mode)
    inbound = flush = turns = 0
    done = 0
    clock = CLOCK
    position = 0
    count = len(steps)
    gc.collect()
    while done < messages:
        t0 = clock()
        for _ in range(batch):
            steps[position]()
            position += 1
            if position == count:
                position = 0
        t1 = clock()
        flush_now(io)
        t2 = clock()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        t3 = clock()
        inbound += t1 - t0
        flush += t2 - t1
        turns += t3 - t2
        done += batch
    return {"inbound": inbound / done, "flush": flush / done, "turns": turns / done}


async def shared_writes(io: Server, clients: Clients, room_size: int) -> float:
    """Writes each member of a room gets when 4 of its members send in one iteration (1:
    the frames due to one connection share one write)."""
    senders = [i for i, s in enumerate(clients.sockets) if s.data["room"] == "room-0"]
    senders = senders[:4] if senders else [0] * 4
    frame = masked_frame('42["message","' + TEXT + '"]')
    await settle()
    before = clients.writes()
    for index in senders:
        clients.conns[index].data_received(frame)
    await settle()
    return (clients.writes() - before) / room_size


async def empty_turns(messages: int, batch: int) -> float:
    """ns per message of the loop's two turns with nothing to do (subtracted from `turns`)."""
    clock = CLOCK
    total = 0
    for _ in range(messages // batch):
        t0 = clock()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        total += clock() - t0
    return total / messages


MODES = ("full", "ws", "engine", "socket", "emit", "deliver")


async def setup(scenario: str) -> tuple[Server, Clients, list[int], int]:
    """The relay with its clients open and in their rooms: server, clients, senders, room size."""
    io = relay_server()
    clients = Clients(io)
    if scenario == "chat":
        rooms, size = 100, 10
        await clients.open(rooms * size, lambda i: f"room-{i % rooms}")
        return io, clients, list(range(rooms * size)), size
    await clients.open(1000, lambda i: "all")
    return io, clients, [0], 1000


class CollectorWatch:
    """While entered, counts the garbage collector's runs and their time, per generation."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.ns = [0, 0, 0]
        self._started = 0

    def __enter__(self) -> CollectorWatch:
        gc.callbacks.append(self._watch)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._watch)

    def _watch(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
        else:
            self.collections[info["generation"]] += 1
            self.ns[info["generation"]] += time.perf_counter_ns() - self._started


async def run_only(scenario: str, mode: str, messages: int, batch: int) -> dict[str, Any]:
    """One mode, once, for a profiler to watch; also what the garbage collector did."""
    io, clients, senders, _ = await setup(scenario)
    with CollectorWatch() as collector:
        result: dict[str, Any] = await measure(
            io, clients, mode, senders, batch if scenario == "chat" else 1, messages
        )
    result["gc_collections_per_1000_messages"] = [
        c * 1000 / messages for c in collector.collections
    ]
    result["gc_us_per_message"] = [ns / 1000 / messages for ns in collector.ns]
    result["objects_tracked"] = len(gc.get_objects())
    return result


async def run(scenario: str, runs: int, messages: int, batch: int) -> dict[str, Any]:
    """Measure every mode `runs` times (interleaved) and return the medians."""
    io, clients, senders, recipients = await setup(scenario)
    if scenario != "chat":
        batch = 1
    shared = await shared_writes(io, clients, recipients)
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    idle: list[float] = []
    writes_before = clients.writes()
    for _ in range(runs):
        for mode in MODES:
            results[mode].append(await measure(io, clients, mode, senders, batch, messages))
            await settle()
        idle.append(await empty_turns(messages, batch))
    total_messages = runs * len(MODES) * messages
    writes = clients.writes() - writes_before
    idle_ns = statistics.median(idle)
    out: dict[str, Any] = {
        "scenario": scenario,
        "recipients": recipients,
        "batch": batch,
        "messages_per_run": messages,
        "runs": runs,
        "writes_per_delivery": writes / (total_messages * recipients),
        "writes_per_recipient_for_4_messages_in_one_iteration": shared,
        "us_per_message": {},
    }
    for mode in MODES:
        rows = results[mode]
        inbound = statistics.median(r["inbound"] for r in rows) / 1000
        flush = statistics.median(r["flush"] for r in rows) / 1000
        turns = max(0.0, statistics.median(r["turns"] for r in rows) - idle_ns) / 1000
        out["us_per_message"][mode] = {
            "inbound": round(inbound, 3),
            "flush": round(flush, 3),
            "loop": round(turns, 3),
            "total": round(inbound + flush + turns, 3),
        }
    per = out["us_per_message"]
    out["steps_us"] = {
        "websocket frame parse": round(per["full"]["inbound"] - per["ws"]["inbound"], 3),
        "engine.io decode + budget": round(per["ws"]["inbound"] - per["engine"]["inbound"], 3),
        "socket.io decode + namespace": round(
            per["engine"]["inbound"] - per["socket"]["inbound"], 3
        ),
        "handler dispatch (task)": round(
            per["socket"]["inbound"] - per["emit"]["inbound"] + per["socket"]["loop"], 3
        ),
        "emit: operator + encode": round(per["emit"]["inbound"] - per["deliver"]["inbound"], 3),
        "adapter deliver (all recipients)": round(per["deliver"]["inbound"], 3),
        "flush (all recipients' writes)": round(per["full"]["flush"], 3),
        "total (full path)": per["full"]["total"],
    }
    out["us_per_delivery"] = round(per["full"]["total"] / recipients, 3)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=("chat", "fanout"), default="chat")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=8, help="messages per loop iteration")
    parser.add_argument("--asyncio", action="store_true", help="plain asyncio, not uvloop")
    parser.add_argument("--table", action="store_true", help="also print a table")
    parser.add_argument("--only", choices=MODES, help="run this mode only (for a profiler)")
    args = parser.parse_args(argv)
    messages = args.messages if args.scenario == "chat" else max(1, args.messages // 100)
    if args.only:
        main_coro: Coroutine[Any, Any, Any] = run_only(
            args.scenario, args.only, args.runs * messages, args.batch
        )
    else:
        main_coro = run(args.scenario, args.runs, messages, args.batch)
    if args.asyncio:
        result = asyncio.run(main_coro)
    else:
        import uvloop

        result = uvloop.run(main_coro)
    print(json.dumps(result, indent=2))
    if args.table and not args.only:
        print(f"\n{'step':40} µs/message")
        for step, value in result["steps_us"].items():
            print(f"{step:40} {value:8.3f}")
        print(f"{'per delivery':40} {result['us_per_delivery']:8.3f}")


if __name__ == "__main__":
    main()

"""Support of the delivery fault tests: `salas serve` as a process, a TCP relay that cuts or
mutes connections, the Node members (tests/chat/js/delivery_clients.js) and the stored
history to compare with.

A plain module (not a conftest.py); test modules import what they use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import shutil
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from salas.store import MessageStore, StoredMessage, open_store

ROOT = Path(__file__).resolve().parents[2]
MEMBERS_JS = Path(__file__).resolve().parent / "js" / "delivery_clients.js"
LISTENING = re.compile(r"salas chat listening on http://127\.0\.0\.1:(\d+)/")

needs_node = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "socket.io-client").is_dir(),
    reason="needs node and npm's socket.io-client (scripts/setup.sh --test)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def until(what: str, condition: Any, timeout: float, poll: float = 0.05) -> None:
    """Wait until `await condition()` is true (a bounded loop), or fail saying `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting until {what}")
        await asyncio.sleep(poll)


# ----------------------------------------------------------------------------- the server
class Serve:
    """`salas serve` on a fixed loopback port as a real process, stopped with SIGTERM."""

    def __init__(self, port: int, db: str, *flags: str) -> None:
        self.port = port
        self.db = db
        self.flags = flags
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return "\n".join(self.lines[-60:])

    async def start(self) -> Serve:
        proc = self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "salas",
            "serve",
            "--port",
            str(self.port),
            "--db",
            self.db,
            *self.flags,
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        listening = asyncio.get_running_loop().create_future()

        async def read() -> None:
            assert proc.stderr is not None
            while line := await proc.stderr.readline():
                text = line.decode(errors="replace").rstrip("\n")
                self.lines.append(text)
                if LISTENING.search(text) and not listening.done():
                    listening.set_result(None)
            if not listening.done():
                listening.set_exception(AssertionError("salas serve ended before listening"))

        self._reader = asyncio.create_task(read())
        try:
            await asyncio.wait_for(listening, 30)
        except BaseException:
            await self.stop()
            raise AssertionError("salas serve did not start:\n" + self.log) from None
        return self

    async def stop(self) -> int:
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError("salas serve did not stop:\n" + self.log) from None
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return code


# ------------------------------------------------------------------------------ the relay
@dataclass(eq=False)
class _Pair:
    down: asyncio.StreamWriter  # to the client
    up: asyncio.StreamWriter  # to the server
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def cut(self) -> None:
        # abort, not close: whatever is in flight is lost, as on a real network failure.
        self.down.transport.abort()
        self.up.transport.abort()


class Relay:
    """A TCP relay to the server that can cut its connections (`cut_all`, `cut_random`:
    both sides see the connection end), refuse new ones (`open = False`), and `mute` the
    server-to-client direction (the bytes are read and thrown away: acks get lost)."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.open = True
        self.muted = False
        self.port = 0
        self.cuts = 0
        self.pairs: list[_Pair] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.transport.abort()
            return
        pair = _Pair(writer, up_writer)
        self.pairs.append(pair)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, down: bool) -> None:
            try:
                while data := await src.read(65536):
                    if down and self.muted:
                        continue
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                pair.cut()
                with contextlib.suppress(ValueError):
                    self.pairs.remove(pair)

        pair.tasks = [
            asyncio.create_task(pipe(reader, up_writer, False)),
            asyncio.create_task(pipe(up_reader, writer, True)),
        ]

    def cut_all(self) -> int:
        pairs, self.pairs = self.pairs, []
        for pair in pairs:
            pair.cut()
        self.cuts += len(pairs)
        return len(pairs)

    def cut_random(self, rng: random.Random) -> bool:
        if not self.pairs:
            return False
        pair = rng.choice(self.pairs)
        self.pairs.remove(pair)
        pair.cut()
        self.cuts += 1
        return True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.cut_all()


# ------------------------------------------------------------------------ the Node members
class Members:
    """tests/chat/js/delivery_clients.js: the members, commanded over stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, members: list[dict[str, Any]], seed: int, lifetime: float = 240, **opts: Any
    ) -> Members:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(MEMBERS_JS),
            str(int(lifetime)),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,  # the final report is one long line
        )
        made = cls(proc)
        await made.command("start", timeout=60, members=members, seed=seed, opts=opts)
        return made

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            reply = json.loads(line)
            future = self._waiting.pop(reply.get("re"), None)
            if future is not None and not future.done():
                future.set_result(reply)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(AssertionError("the Node members exited"))

    def send(self, cmd: str, **args: Any) -> asyncio.Future[dict[str, Any]]:
        """Send a command; its reply, when it comes."""
        assert self.proc.stdin is not None
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = future
        self.proc.stdin.write((json.dumps({"id": self._next, "cmd": cmd, **args}) + "\n").encode())
        return future

    async def command(self, cmd: str, timeout: float = 30, **args: Any) -> dict[str, Any]:
        try:
            reply = await asyncio.wait_for(self.send(cmd, **args), timeout)
        except TimeoutError:
            raise AssertionError(f"no answer to {cmd!r} within {timeout} s") from None
        assert "error" not in reply, reply["error"]
        return reply

    async def state(self) -> list[dict[str, Any]]:
        members: list[dict[str, Any]] = (await self.command("state"))["members"]
        return members

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                self.send("quit")
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._reader.cancel()


# ------------------------------------------------------------------------------ the history
class History:
    """The stored messages, read through the store's public API (as `salas serve` wrote them)."""

    def __init__(self, db: str) -> None:
        self.store: MessageStore = open_store(db)

    async def __aenter__(self) -> History:
        await self.store.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.store.close()

    async def of(self, room: str) -> list[StoredMessage]:
        found: list[StoredMessage] = []
        after = 0
        for _ in range(10_000):
            page = await self.store.history(room, after=after, limit=500)
            found += page
            if len(page) < 500:
                return found
            after = page[-1].id
        raise AssertionError("history without end")

    async def counts(self, rooms: list[str]) -> dict[str, int]:
        return {room: len(await self.of(room)) for room in rooms}


@dataclass
class Check:
    """What the members received, held against the stored history."""

    messages: int = 0  # stored
    deliveries: int = 0  # ids received, all members
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    unacked: int = 0  # stored, but no sender holds an ack for it
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.out_of_order or self.unacked)


async def check_delivery(report: list[dict[str, Any]], history: History) -> Check:
    """Every member's sequence per room == the room's stored ids (all members joined before
    the first message); every stored message acked to its sender with its id."""
    check = Check()
    rooms = sorted({room for member in report for room in member["seq"]})
    stored = {room: [m.id for m in await history.of(room)] for room in rooms}
    check.messages = sum(len(ids) for ids in stored.values())
    acked: dict[str, int] = {}
    for member in report:
        acked.update(member["acked"])
        if member["stats"]["dups"]:
            check.duplicated += member["stats"]["dups"]
            check.problems.append(f"{member['name']} got {member['stats']['dups']} ids twice")
        for room, got in member["seq"].items():
            want = stored[room]
            check.deliveries += len(got)
            missing = set(want) - set(got)
            check.lost += len(missing)
            check.duplicated += len(got) - len(set(got))
            if got != want and not missing and len(got) == len(want):
                check.out_of_order += 1
            if got != want and len(check.problems) < 10:
                check.problems.append(
                    f"{member['name']} in {room}: {len(got)} received, {len(want)} stored, "
                    f"missing {sorted(missing)[:10]}, extra {sorted(set(got) - set(want))[:10]}"
                )
    for room in rooms:
        for message in await history.of(room):
            if message.client_id is None or acked.get(message.client_id) != message.id:
                check.unacked += 1
                if len(check.problems) < 10:
                    check.problems.append(f"stored, not acked: {message}")
    return check


def totals(states: list[dict[str, Any]]) -> dict[str, int]:
    """The members' counters summed up."""
    keys = ("connects", "disconnects", "recovered", "fresh", "destroyed", "tries", "resends")
    summed = {key: sum(m["stats"][key] for m in states) for key in keys}
    summed["overlap"] = sum(m["stats"]["overlap"] for m in states)
    return summed

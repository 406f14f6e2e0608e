"""Connection state recovery across a restart of `salas serve` on SQLite, with the official
Node client: what the server saved while shutting down is what the next process recovers.

The Node member reaches the server through a gate (a TCP relay the test opens and closes),
so that the test decides when the client's own reconnection attempts can succeed: after
the restart and after the other member has sent what it must recover from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import socketio

from tests.support.processes import SalasServe, free_port, salas_serve
from tests.support.relay import Relay
from tests.support.services import ROOT, require_node

MEMBER = Path(__file__).parent / "js" / "recovering_member.js"

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow, pytest.mark.node]


class Member:
    """The Node member: commands in, events (JSON lines) out."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, url: str) -> Member:
        proc = await asyncio.create_subprocess_exec(
            require_node(),
            str(MEMBER),
            url,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            event = json.loads(line)
            self.events.append(event)
            await self._queue.put(event)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\n".encode())

    async def expect(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        """The next event; it must be of `kind`."""
        try:
            event = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {kind!r} from the member; it said {self.events}") from None
        assert event["type"] == kind, f"expected {kind!r}, got {event} (all: {self.events})"
        return event

    def unread(self) -> list[dict[str, Any]]:
        events = []
        while not self._queue.empty():
            events.append(self._queue.get_nowait())
        return events

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(OSError):
                self.send("quit")
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._reader.cancel()


@contextlib.asynccontextmanager
async def chat_client(port: int, name: str) -> AsyncIterator[socketio.AsyncClient]:
    """A python-socketio member of the chat (no reconnection)."""
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        f"http://127.0.0.1:{port}", auth={"name": name}, transports=["websocket"], wait_timeout=5
    )
    try:
        yield client
    finally:
        await client.disconnect()


async def test_member_recovers_after_serve_restart_on_sqlite(tmp_path: Path) -> None:
    """SIGTERM and restart `salas serve`: the Node member reconnects by itself, is recovered
    (same id, still in its room) and gets the messages sent meanwhile once each, in order."""
    port = free_port()
    db = f"sqlite://{tmp_path / 'chat.db'}"
    gate = await Relay(port).start()
    member: Member | None = None
    servers: list[SalasServe] = []
    try:
        servers.append(await salas_serve(tmp_path, db=db, port=port).astart())
        member = await Member.start(f"http://127.0.0.1:{gate.port}")
        first = await member.expect("connect")
        assert first["recovered"] is False
        member.send("join lobby")
        assert (await member.expect("joined"))["ok"] is True
        async with chat_client(port, "ana") as ana:
            assert (await ana.call("channel_join", "lobby", timeout=5))["ok"] is True
            assert (await ana.call("message", "m0", timeout=5))["ok"] is True
            m0 = await member.expect("message")
        assert m0["message"] == "m0" and m0["offset"] is not None

        gate.open = False  # from now on the member's reconnection attempts fail
        assert await servers[0].astop() == 0
        dropped = await member.expect("disconnect")
        assert dropped["reason"] == "transport close"
        last_offset = int(dropped["offset"])  # what the member hands back to be recovered
        assert last_offset >= int(m0["offset"])

        servers.append(await salas_serve(tmp_path, db=db, port=port).astart())
        async with chat_client(port, "ana") as ana:
            assert (await ana.call("channel_join", "lobby", timeout=5))["ok"] is True
            for text in ("m1", "m2", "m3"):
                assert (await ana.call("message", text, timeout=5))["ok"] is True
            assert member.unread() == []  # the member is not back yet: m1..m3 are in the log
            gate.open = True

            again = await member.expect("connect")
            assert again["recovered"] is True, servers[1].log
            assert again["id"] == first["id"]
            missed = [await member.expect("message") for _ in range(3)]
            assert [m["message"] for m in missed] == ["m1", "m2", "m3"]
            assert all(int(m["offset"]) > last_offset for m in missed)
            # Still in the room without joining again; and nothing came twice.
            assert (await ana.call("message", "m4", timeout=5))["ok"] is True
            assert (await member.expect("message"))["message"] == "m4"
            await asyncio.sleep(0.3)
            assert [e for e in member.unread() if e["type"] == "message"] == []
        assert await servers[1].astop() == 0
    finally:
        if member is not None:
            await member.stop()
        for server in servers:
            await server.astop()
        await gate.close()

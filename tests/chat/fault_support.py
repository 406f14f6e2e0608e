"""Support of the delivery fault tests: the Node members (tests/chat/js/delivery_clients.js),
the stored history to compare with, and the check of one against the other. (`salas serve`
as a process and the TCP relay are in tests/support.)

A plain module (not a conftest.py); test modules import what they use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salas.store import MessageStore, StoredMessage, open_store
from tests.support.services import ROOT, require_node

MEMBERS_JS = Path(__file__).resolve().parent / "js" / "delivery_clients.js"


async def until(what: str, condition: Any, timeout: float, poll: float = 0.05) -> None:
    """Wait until `await condition()` is true (a bounded loop), or fail saying `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting until {what}")
        await asyncio.sleep(poll)


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
            require_node(),
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
    extra: int = 0  # ids received that the store does not hold for that room
    duplicated: int = 0
    out_of_order: int = 0
    unacked: int = 0  # stored, but no sender holds an ack for it
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.extra or self.duplicated or self.out_of_order or self.unacked)


async def check_delivery(report: list[dict[str, Any]], history: History) -> Check:
    """Every member's sequence per room == the room's stored ids (all members joined before
    the first message): nothing lost, nothing that was never stored, nothing twice, in order;
    and every stored message acked to its sender with its id."""
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
            extra = set(got) - set(want)
            check.lost += len(missing)
            check.extra += len(extra)
            check.duplicated += len(got) - len(set(got))
            if got != want and not missing and len(got) == len(want):
                check.out_of_order += 1
            if got != want and len(check.problems) < 10:
                check.problems.append(
                    f"{member['name']} in {room}: {len(got)} received, {len(want)} stored, "
                    f"missing {sorted(missing)[:10]}, extra {sorted(extra)[:10]}"
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

"""No message lost: fault injection against a real `salas serve` (SQLite in a temporary
directory) with the official Node client (tests/chat/js/delivery_clients.js).

Transports are cut from the server's side (a TCP relay between client and server drops the
connection) and from the client's side (the client destroys its own socket), the server is
restarted mid-stream, acks are lost on purpose; afterwards every member's received ids per
room must equal the stored history (all members join before the first message): nothing
lost, nothing twice, in order, and every stored message acknowledged to its sender.

Waits are on counts (stored messages, connections, received ids), never on fixed sleeps;
the timeouts are generous for a loaded machine. `pytest -s` shows the counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from salas.store import StoredMessage
from tests.chat.fault_support import (
    Check,
    History,
    Members,
    check_delivery,
    totals,
    until,
)
from tests.support.processes import SalasServe, salas_serve
from tests.support.relay import Relay

# Each fault test needs Node.js and npm's socket.io-client: Members.start skips without them
# (fails under SALAS_REQUIRE_SERVICES=1).

ROOMS = ["sala-a", "sala-b", "sala-c"]


@asynccontextmanager
async def serving(tmp_path: Path, *flags: str) -> AsyncIterator[SalasServe]:
    server = await salas_serve(tmp_path, *flags).astart()
    try:
        yield server
    finally:
        await server.astop()


def stored_grew(history: History, room: str, beyond: int) -> Callable[[], Awaitable[bool]]:
    async def grew() -> bool:
        return len(await history.of(room)) >= beyond

    return grew


async def settle(members: Members, history: History, rooms: list[str], timeout: float) -> None:
    """Until every member is connected, has no gap left to fill, and holds as many ids per
    room as the store does (what it is missing may still be on its way). If that never
    happens, the check that follows says what is missing."""

    async def settled() -> bool:
        stored = await history.counts(rooms)
        return all(
            m["connected"]
            and not m["catching"]
            and all(m["counts"][room] >= stored[room] for room in m["counts"])
            for m in await members.state()
        )

    with contextlib.suppress(AssertionError):
        await until("every member has every stored message", settled, timeout, poll=0.2)


async def finish(members: Members, history: History, label: str) -> dict[str, Any]:
    """The final report checked against the history; the counts, printed."""
    report = (await members.command("report", timeout=60))["members"]
    check = await check_delivery(report, history)
    counts = totals(report)
    errors = [e for m in report for e in m["stats"]["errors"]]
    print(
        f"\n[{label}] stored messages: {check.messages}, deliveries checked: {check.deliveries}"
        f", lost: {check.lost}, duplicated: {check.duplicated}, out of order: "
        f"{check.out_of_order}, unacked: {check.unacked}; disconnects: {counts['disconnects']}"
        f" (client-side destroys: {counts['destroyed']}), reconnects recovered: "
        f"{counts['recovered']}, not recovered (history fill): {counts['fresh']}, message "
        f"packets sent: {counts['tries']} (script resends: {counts['resends']}), history "
        f"overlap merged: {counts['overlap']}"
    )
    print(
        f"[{label}] per member (received ids, disconnects, recovered): "
        + ", ".join(
            f"{m['name']}={sum(m['counts'].values())}/{m['stats']['disconnects']}"
            f"/{m['stats']['recovered']}"
            for m in report
        )
    )
    assert errors == []
    assert check.ok, check.problems
    return {**counts, "messages": check.messages, "deliveries": check.deliveries}


# --------------------------------------------------------------------------- (a) one victim
@pytest.mark.slow
@pytest.mark.node
@pytest.mark.timeout(120)
@pytest.mark.parametrize("side", ["server", "client"])
async def test_cut_transport_is_recovered_with_every_missed_message(
    tmp_path: Path, side: str
) -> None:
    """A member's transport cut (server side: the relay drops it; client side: the client
    destroys its socket) while two others keep sending: each reconnect is recovered and
    every message missed meanwhile arrives once, in order."""
    cuts = 6
    async with serving(tmp_path) as server, History(server.db) as history:
        relay = await Relay(server.port).start()
        members = await Members.start(
            [
                {"name": "victim", "url": relay.url, "rooms": ["sala"]},
                {"name": "ana", "url": server.url, "rooms": ["sala"], "sends": True},
                {"name": "bob", "url": server.url, "rooms": ["sala"], "sends": True},
            ],
            seed=7,
        )
        try:
            await members.command("stream", interval_ms=150)
            for n in range(cuts):
                before = len(await history.of("sala"))
                relay.open = False  # reconnection attempts fail until the others sent more
                if side == "server":
                    assert relay.cut_all() == 1
                else:
                    assert (await members.command("destroy", member=0))["destroyed"] is True
                await until(
                    "the others sent while the victim is away",
                    stored_grew(history, "sala", before + 5),
                    30,
                )
                relay.open = True

                async def back(n: int = n) -> bool:
                    victim = (await members.state())[0]
                    return bool(victim["connected"] and victim["stats"]["connects"] == n + 2)

                await until("the victim is back", back, 30)
            await members.command("stop_stream")
            await settle(members, history, ["sala"], 60)
            counts = await finish(members, history, f"cut from the {side} side")
            victim = (await members.state())[0]["stats"]
            assert victim["disconnects"] == cuts
            assert victim["recovered"] == cuts and victim["fresh"] == 0
            assert counts["messages"] >= cuts * 5
        finally:
            await members.stop()
            await relay.close()


# ------------------------------------------------------------------------------- (b) soak
@pytest.mark.slow
@pytest.mark.node
@pytest.mark.timeout(240)
@pytest.mark.parametrize("recovery", ["--recovery", "--no-recovery"])
async def test_soak_random_disconnects_lose_and_duplicate_nothing(
    tmp_path: Path, recovery: str
) -> None:
    """36 members in 3 rooms send for 25 s while hundreds of random disconnects hit them
    (client-side destroys and relay drops): every member's ids per room equal the stored
    history, every stored message was acked to its sender. With recovery the members get
    their sessions back; without, they join again and fill the gap with `history {after}`."""
    rng = random.Random(2024)
    seconds = 25.0
    async with serving(tmp_path, recovery) as server, History(server.db) as history:
        relay = await Relay(server.port).start()
        specs = [
            {"url": relay.url, "rooms": [ROOMS[i % 3], ROOMS[(i + 1) % 3]], "sends": True}
            for i in range(36)
        ]
        members = await Members.start(specs, seed=2024)
        try:
            await members.command("stream", interval_ms=800)
            await members.command("chaos", every_ms=[50, 130])
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            while loop.time() < end:
                relay.cut_random(rng)
                await asyncio.sleep(rng.uniform(0.1, 0.3))  # the pace of the faults
            await members.command("chaos")
            await members.command("stop_stream", timeout=90, timeout_ms=80_000)
            await settle(members, history, ROOMS, 90)
            counts = await finish(members, history, f"soak {recovery}")
            print(f"[soak {recovery}] relay drops: {relay.cuts}")
            assert counts["disconnects"] >= 200
            if recovery == "--recovery":
                assert counts["recovered"] >= counts["disconnects"] // 2
            else:
                assert counts["recovered"] == 0 and counts["fresh"] >= 200
            assert counts["messages"] >= 300
        finally:
            await members.stop()
            await relay.close()


# ------------------------------------------------------------------------------ (c) restarts
@pytest.mark.slow
@pytest.mark.node
@pytest.mark.timeout(180)
async def test_serve_restarted_mid_stream_loses_no_acknowledged_message(tmp_path: Path) -> None:
    """SIGTERM and start `salas serve` again (same port, same SQLite file) three times while
    12 members send: every message acked to its sender is stored once and reached every
    member once, in order; the members recover their sessions from the new process. One
    more member loses the ack of a message stored just before a restart: its retry to the
    new process is acked with the stored id and broadcast by no one a second time."""
    restarts = 3
    async with serving(tmp_path) as server, History(server.db) as history:
        relay = await Relay(server.port).start()
        specs: list[dict[str, Any]] = [
            {"url": server.url, "rooms": [ROOMS[i % 3], ROOMS[(i + 1) % 3]], "sends": True}
            for i in range(12)
        ]
        specs.append({"name": "unlucky", "url": relay.url, "rooms": [ROOMS[0]]})
        members = await Members.start(specs, seed=11, reconnectionDelayMax=300)
        try:
            await members.command("stream", interval_ms=150)
            unlucky: asyncio.Future[dict[str, Any]] | None = None
            for n in range(restarts):
                before = sum((await history.counts(ROOMS)).values())

                async def more(before: int = before) -> bool:
                    return sum((await history.counts(ROOMS)).values()) >= before + 60

                await until("messages flow", more, 60)
                if n == 0:  # its ack is lost, then the server goes away
                    relay.muted = True
                    unlucky = members.send(
                        "send", member=12, room=ROOMS[0], text="acked late", client_id="late-1"
                    )

                    async def stored() -> bool:
                        return any(m.client_id == "late-1" for m in await history.of(ROOMS[0]))

                    await until("the unlucky message is stored", stored, 30)
                assert await server.astop() == 0, server.log
                relay.muted = False
                await server.astart()

                async def all_back(n: int = n) -> bool:
                    return all(
                        m["connected"] and m["stats"]["connects"] >= n + 2
                        for m in await members.state()
                    )

                await until("every member is back", all_back, 60)
            await members.command("stop_stream", timeout=90, timeout_ms=80_000)
            assert unlucky is not None
            late = await asyncio.wait_for(unlucky, 30)
            assert late["reply"]["ok"] is True and late["tries"] >= 2
            await settle(members, history, ROOMS, 60)
            counts = await finish(members, history, "restarts")
            assert counts["disconnects"] >= restarts * len(specs)
            assert counts["recovered"] >= restarts * len(specs)
            assert [m.id for m in await history.of(ROOMS[0]) if m.client_id == "late-1"] == [
                late["reply"]["id"]
            ]
            assert "Traceback" not in server.log
        finally:
            await members.stop()
            await relay.close()


# -------------------------------------------------------------------------- (d) lost acks
@pytest.mark.slow
@pytest.mark.node
@pytest.mark.timeout(90)
async def test_retried_send_with_a_lost_ack_appears_once(tmp_path: Path) -> None:
    """A send whose acks are lost on purpose (the relay throws away what the server says)
    is retried by the client, on the same connection and after a reconnect, with the same
    client_id: stored once, received once by everyone, acked with the stored id."""
    async with serving(tmp_path) as server, History(server.db) as history:
        relay = await Relay(server.port).start()
        members = await Members.start(
            [
                {"name": "sender", "url": relay.url, "rooms": ["sala"]},
                {"name": "reader", "url": server.url, "rooms": ["sala"]},
            ],
            seed=3,
            ackTimeout=1500,
        )
        try:
            relay.muted = True
            sending = members.send(
                "send", member=0, room="sala", text="only once", client_id="lost-ack-1"
            )

            async def retried_unanswered() -> bool:
                sender, reader = await members.state()
                return bool(reader["counts"]["sala"] == 1 and sender["stats"]["tries"] >= 2)

            await until("the message is stored and its ack timed out", retried_unanswered, 30)
            relay.muted = False
            relay.cut_all()  # and the sender reconnects, recovers, and tries once more
            sent = await asyncio.wait_for(sending, 30)
            assert "error" not in sent, sent
            assert sent["reply"]["ok"] is True and sent["tries"] >= 3
            stored = await history.of("sala")
            assert [(m.id, m.client_id) for m in stored] == [(sent["reply"]["id"], "lost-ack-1")]
            # A last message from the reader: everyone has everything before it.
            await members.command("send", member=1, room="sala", text="after", client_id="reader-1")
            await settle(members, history, ["sala"], 30)
            await finish(members, history, "lost acks")
            sender = (await members.state())[0]["stats"]
            assert sender["recovered"] == 1 and sender["resends"] == 0
        finally:
            await members.stop()
            await relay.close()


# ------------------------------------------------------------------ the check itself
class _StoredRooms:
    """A stand-in for `History`: the stored ids per room, acked to client ids c<id>."""

    def __init__(self, rooms: dict[str, list[int]]) -> None:
        self.rooms = rooms

    async def of(self, room: str) -> list[StoredMessage]:
        return [
            StoredMessage(id=i, channel=room, message="m", user="u", ts=0, client_id=f"c{i}")
            for i in self.rooms[room]
        ]


async def _check(got: list[int], stored: list[int]) -> Check:
    member = {
        "name": "m",
        "seq": {"sala": got},
        "acked": {f"c{i}": i for i in stored},
        "stats": {"dups": 0},
    }
    return await check_delivery([member], _StoredRooms({"sala": stored}))  # type: ignore[arg-type]


async def test_check_accepts_exactly_the_stored_sequence() -> None:
    """The stored ids, each once and in order, are ok."""
    check = await _check([1, 2, 3], [1, 2, 3])
    assert check.ok, check.problems
    assert check.deliveries == 3 and check.messages == 3


@pytest.mark.parametrize(
    ("got", "what"),
    [
        ([1, 3], "lost"),
        ([1, 2, 3, 99], "extra"),
        ([1, 2, 2, 3], "duplicated"),
        ([2, 1, 3], "out_of_order"),
    ],
)
async def test_check_fails_on_any_difference(got: list[int], what: str) -> None:
    """An id lost, received but never stored, received twice, or out of order is not ok."""
    check = await _check(got, [1, 2, 3])
    assert not check.ok
    assert getattr(check, what) > 0, check
    assert check.problems

"""`typing` floods: toggling true/false a thousand times must not reach every member a
thousand times (the throttle cannot be bypassed by toggling, and typing spends from the
chat's per-connection budget)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.abuse.abuse_support import ROOM, honest_chatting, serving, ws_call, ws_connect

TOGGLES = 1000
# What a member may see of one typist in the second or two the flood lasts: the first
# `true`, a `false`, perhaps a throttled `true` again; a few more for safety.
MAX_SEEN = 10


async def test_typing_toggle_flood_reaches_members_a_bounded_number_of_times(
    tmp_path: Path,
) -> None:
    """1,000 alternating typing true/false from one member reach the honest member of the
    room at most a handful of times, and the honest member is served meanwhile."""
    async with serving(tmp_path) as server, honest_chatting(server.port) as honest:
        ws = await ws_connect(server.port, name="typist")
        ack = await ws_call(ws, "channel_join", ROOM, 1)
        assert ack["ok"], ack
        typist = ack["name"]
        for i in range(TOGGLES):
            payload = {"channel": ROOM, "typing": i % 2 == 0}
            await ws.send("42" + json.dumps(["typing", payload]))
        await asyncio.sleep(1.0)  # what was let through has arrived
        seen = [t for user, t in honest.typing if user == typist]
        assert len(seen) <= MAX_SEEN, f"{len(seen)} typing events reached the member"
        await ws.close()

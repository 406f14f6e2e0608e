"""bench/micro_chat.py: the chat's path without a network, one process or a cluster's nodes."""

from __future__ import annotations

import json

import pytest
from bench.micro_chat import main, run


async def test_one_process_delivers_every_message_to_its_room() -> None:
    result = await run("memory://", runs=1, messages=400, batch=8, rate=20_000, write_interval=0)
    # Each message reaches its ten members, one write each (none share one at this pace).
    assert 0.9 <= result["writes_per_delivery"] <= 1.0
    assert result["process_us"] > 0


async def test_several_nodes_deliver_every_message_across_the_cluster(
    redis_url: str, tmp_path: object
) -> None:
    """Three nodes over Redis, each room's members spread over them: every message reaches
    every member, whichever node it was posted through."""
    db = f"sqlite:///{tmp_path}/micro.db"
    result = await run(
        db, runs=1, messages=300, batch=4, rate=3_000, write_interval=0, redis=redis_url, nodes=3
    )
    assert 0.9 <= result["writes_per_delivery"] <= 1.0


def test_the_command_line_takes_a_store_url(capsys: pytest.CaptureFixture[str]) -> None:
    """`--db URL` replaces the temporary SQLite file (here the memory store)."""
    main(["--db", "memory://", "--runs", "1", "--messages", "200", "--rate", "20000"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["process_us"] > 0 and 0.9 <= result["writes_per_delivery"] <= 1.0

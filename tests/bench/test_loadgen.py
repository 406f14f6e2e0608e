"""The C load generator counts exactly what the blast server sends it (no timing asserted)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from bench.driver import BLAST, LoadGen, build

from tests.support.processes import free_port
from tests.support.services import require_c_compiler

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def blast_port() -> Iterator[int]:
    require_c_compiler()  # skipped without one (fails under SALAS_REQUIRE_SERVICES=1)
    build()
    port = free_port()
    proc = subprocess.Popen(
        [str(BLAST), "--port", str(port), "--ping-ms", "100"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


def _burst(
    port: int, clients: int, rooms: int, messages: int, size: int = 48, read_size: int = 1 << 20
) -> dict[str, int]:
    with LoadGen(port, cpu=None, size=size, read_size=read_size) as lg:
        c = lg.command(f"connect {clients} {rooms} 30", 60)
        assert c["ready"] == clients, c
        s = lg.command("sync 10", 30)
        assert s["ok"], s
        b = lg.command(f"burst {messages} 30", 60)
        return b


@pytest.mark.parametrize(
    ("size", "read_size"),
    [(48, 1 << 20), (48, 7), (5000, 1000), (65_500, 7), (65_500, 1 << 20)],
    ids=["small", "small-split", "16bit-len", "64bit-len-split", "64bit-len"],
)
def test_counts_every_delivery_once(blast_port: int, size: int, read_size: int) -> None:
    """Each message reaches every room member exactly once, however frames are split."""
    b = _burst(blast_port, 40, 1, 25, size=size, read_size=read_size)
    assert b["expected"] == 40 * 25
    assert b["received"] == 40 * 25
    assert b["stale"] == 0
    assert b["closed"] == 0


def test_counts_per_room(blast_port: int) -> None:
    """With several rooms, a message counts once per member of its own room only."""
    b = _burst(blast_port, 60, 6, 12)  # 6 rooms of 10; 2 messages per room
    assert b["expected"] == 12 * 10
    assert b["received"] == 12 * 10
    assert b["stale"] == 0


def test_answers_pings_and_counts_acks(blast_port: int) -> None:
    """Engine.IO pings are answered (the connections survive) and acks are matched."""
    with LoadGen(blast_port, cpu=None) as lg:
        assert lg.command("connect 20 2 30", 60)["ready"] == 20
        assert lg.command("sync 10", 30)["ok"]
        h = lg.command("hold 1", 30)
        assert h["alive"] == 20
        assert h["pings"] > 0
        a = lg.command("acks 0.5 2", 30)
        assert a["errors"] == 0
        assert a["acked"] > 0
        stats = lg.command("stats", 10)
        assert stats["closed"] == 0 and stats["failed"] == 0

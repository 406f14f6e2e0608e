"""Connection floods: one address may hold `--max-connections-per-ip` connections (more get
429), the server `--max-connections` in all (more get 503), and neither limit touches an
honest client on another address; the default lets an office behind one NAT in."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.abuse.abuse_support import HONEST_HOST, healthz, honest_chatting, http_request, serving

# The flood's connections stay open between their requests for the whole test.
KEEP_OPEN = ("--timeout-keep-alive", "30")


def _healthz_from(forwarded_for: str) -> bytes:
    # X-Forwarded-For from a client that is not a configured proxy must not count as its
    # address: each flood connection claims to be someone else.
    return f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {forwarded_for}\r\n\r\n".encode()


async def _flood(port: int, count: int) -> tuple[list[int], list[asyncio.StreamWriter]]:
    """`count` connections from 127.0.0.1, one after the other, each sending one request and
    left open; their statuses in order, and their writers."""
    statuses, writers = [], []
    for i in range(count):
        status, _, writer = await http_request(port, _healthz_from(f"10.0.{i // 250}.{i % 250}"))
        statuses.append(status)
        writers.append(writer)
    return statuses, writers


def _close(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()


async def test_flood_from_one_address_gets_429(tmp_path: Path) -> None:
    """With --max-connections-per-ip 20, the 21st connection from one address is answered 429
    (a forged X-Forwarded-For does not help), another address still connects, and the honest
    member there is served throughout."""
    flags = ("--max-connections-per-ip", "20", *KEEP_OPEN)
    async with serving(tmp_path, *flags) as server, honest_chatting(server.port):
        statuses, writers = await _flood(server.port, 25)
        try:
            assert statuses[:20] == [200] * 20, statuses
            assert statuses[20:] == [429] * 5, statuses
            assert await healthz(server.port, HONEST_HOST) == 200
        finally:
            _close(writers)


async def test_flood_beyond_the_total_gets_503(tmp_path: Path) -> None:
    """With --max-connections 30, connections beyond 30 in all are answered 503 while the
    honest member, connected first, is served throughout."""
    flags = ("--max-connections", "30", *KEEP_OPEN)
    async with serving(tmp_path, *flags) as server, honest_chatting(server.port):
        statuses, writers = await _flood(server.port, 35)
        try:
            # The honest member holds one connection (maybe two for a moment): 28 or 29 of
            # the flood's get in.
            refused = statuses.index(503) if 503 in statuses else len(statuses)
            assert 28 <= refused <= 29, statuses
            assert statuses[:refused] == [200] * refused, statuses
            assert set(statuses[refused:]) == {503}, statuses
        finally:
            _close(writers)


async def test_default_limits_let_an_office_behind_one_nat_in(tmp_path: Path) -> None:
    """With the defaults, 150 connections open at once from one address are all served."""
    async with serving(tmp_path) as server:
        answers = await asyncio.gather(
            *(http_request(server.port, _healthz_from(f"10.1.0.{i}")) for i in range(150))
        )
        _close([writer for _, _, writer in answers])
        assert [status for status, _, _ in answers] == [200] * 150

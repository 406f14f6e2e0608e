"""What the chat keeps per socket (salas.chat.connection.Conn): closing, pending joins."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from salas.chat.connection import Conn
from salas.server import Socket


def _conn() -> Conn:
    return Conn(cast(Socket, object()), None, "guest-0123456789ab")


async def test_wait_closed_returns_once_closed() -> None:
    """Waiters of `wait_closed` go on when the conn is closed; after that it returns at once."""
    conn = _conn()
    waiters = [asyncio.ensure_future(conn.wait_closed()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    conn.close()
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    assert conn.closed
    await asyncio.wait_for(conn.wait_closed(), 1)


async def test_a_cancelled_waiter_leaves_the_others_waiting() -> None:
    """Cancelling one `wait_closed` does not wake or fail the others."""
    conn = _conn()
    first = asyncio.ensure_future(conn.wait_closed())
    second = asyncio.ensure_future(conn.wait_closed())
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.sleep(0)
    assert not second.done()
    conn.close()
    await asyncio.wait_for(second, 1)


async def test_joined_waits_for_pending_joins_only() -> None:
    """`joined` returns at once without pending joins (none made yet), and waits for the
    pending join of the room asked for (or of every room)."""
    conn = _conn()
    await asyncio.wait_for(conn.joined(), 1)
    await asyncio.wait_for(conn.joined("room"), 1)
    assert conn.joining is None
    pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    conn.joining = {"room": pending}
    waiting = [asyncio.ensure_future(conn.joined("room")), asyncio.ensure_future(conn.joined())]
    await asyncio.wait_for(conn.joined("other"), 1)
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiting)
    pending.set_result(None)
    await asyncio.wait_for(asyncio.gather(*waiting), 1)


def test_conn_has_slots() -> None:
    """A server holds one Conn per connection: no instance dict, no Event or dict made up
    front."""
    conn: Any = _conn()
    assert not hasattr(conn, "__dict__")
    assert conn.joining is None and conn._gone is None

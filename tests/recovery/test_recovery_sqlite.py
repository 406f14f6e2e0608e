"""salas.recovery.sqlite: the recovery log written with the file's other writes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from salas.recovery.sqlite import LOG_ROWS_WITHIN, SQLiteRecoveryStore
from salas.recovery.types import LoggedPacket
from salas.store.sqlite import SQLiteStore


def _packet(offset: int) -> LoggedPacket:
    return LoggedPacket(
        offset, "/", ("lobby",), (), (f'42["said","m{offset}"]',), int(time.time() * 1000)
    )


async def test_logged_packets_go_in_the_message_stores_next_transaction(
    tmp_path: Path,
) -> None:
    """Under a chat's load a broadcast's log row follows the message's commit by a
    moment: the rows wait for the file's next transaction (the next batch of messages)
    instead of taking one of their own, with its WAL sync."""
    path = str(tmp_path / "chat.db")
    messages, recovery = SQLiteStore(path), SQLiteRecoveryStore(path)
    await messages.open()
    await recovery.open()
    try:
        writer = messages._db.writer
        assert writer is not None and writer is recovery._db.writer
        before = writer.transactions
        recovery.append(_packet(1))
        recovery.append(_packet(2))
        await asyncio.sleep(0)  # the log's task hands its batch to the file's writer
        stored = await messages.append("lobby", "hello", "ana")
        await recovery.flush()
        assert writer.transactions - before == 1
        assert stored.id == 1
        logged = await recovery.packets_after("/", 0, 10)
        assert [p.offset for p in logged] == [1, 2]
    finally:
        await recovery.close()
        await messages.close()


async def test_logged_packets_alone_are_written_within_their_time(tmp_path: Path) -> None:
    """With nothing else written, the rows are committed on their own, LOG_ROWS_WITHIN
    after they were handed over — not left waiting for a message that may not come."""
    recovery = SQLiteRecoveryStore(str(tmp_path / "chat.db"))
    await recovery.open()
    try:
        began = time.monotonic()
        recovery.append(_packet(1))
        await recovery.flush()
        assert time.monotonic() - began < LOG_ROWS_WITHIN + 1.0
        assert [p.offset for p in await recovery.packets_after("/", 0, 10)] == [1]
        assert recovery.batches_committed == 1
    finally:
        await recovery.close()

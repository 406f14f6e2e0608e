"""A TCP relay in front of a server, for fault tests: it can cut its connections, refuse new
ones (a gate the test opens and closes) and mute the server-to-client direction."""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field

__all__ = ["Relay"]


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
        """Listen on a free loopback port (`port`, `url`)."""
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
        """Cut every relayed connection; how many there were."""
        pairs, self.pairs = self.pairs, []
        for pair in pairs:
            pair.cut()
        self.cuts += len(pairs)
        return len(pairs)

    def cut_random(self, rng: random.Random) -> bool:
        """Cut one relayed connection chosen by `rng`; False when there was none."""
        if not self.pairs:
            return False
        pair = rng.choice(self.pairs)
        self.pairs.remove(pair)
        pair.cut()
        self.cuts += 1
        return True

    async def close(self) -> None:
        """Stop listening and cut what is still relayed."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.cut_all()

"""Counters of one engine server's traffic, read by metrics at scrape time.

Plain integers on one object, bumped where the work is already being done: once per
write to a connection (not per delivery), once per websocket read or POST, once per
session cut off. Reading them costs nothing until somebody asks (``salas.metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EngineStats"]


@dataclass(slots=True)
class EngineStats:
    """What one engine server has received and sent since it was made."""

    packets_received: int = 0  # Engine.IO packets from clients (before the inbound budget)
    bytes_received: int = 0  # websocket bytes read and long-polling POST bodies
    packets_sent: int = 0  # Engine.IO packets written (a websocket write of N frames: N)
    bytes_sent: int = 0  # websocket bytes written and long-polling GET bodies
    slow_consumers: int = 0  # sessions cut off for leaving too much unsent
    origin_refused: int = 0  # requests refused 403 for their Origin

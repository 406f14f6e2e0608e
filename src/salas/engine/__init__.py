"""Engine.IO v4 over asyncio: HTTP long-polling, websocket, upgrade, heartbeats, CORS.

Knows nothing of rooms or Socket.IO; `salas.server` builds on `EngineServer`.
"""

from salas.engine.budget import InboundStats, TokenBucket
from salas.engine.config import CorsConfig, EngineConfig
from salas.engine.http import HttpRequest
from salas.engine.server import EngineServer
from salas.engine.session import EngineSession

__all__ = [
    "CorsConfig",
    "EngineConfig",
    "EngineServer",
    "EngineSession",
    "HttpRequest",
    "InboundStats",
    "TokenBucket",
]

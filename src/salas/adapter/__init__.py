"""Who is in which room and how a broadcast reaches them: memory (one process), redis (cluster)."""

from salas.adapter.base import Adapter, AdapterFactory, BroadcastOptions, RemoteSocket
from salas.adapter.memory import MemoryAdapter
from salas.adapter.redis import RedisAdapter, redis_adapter

__all__ = [
    "Adapter",
    "AdapterFactory",
    "BroadcastOptions",
    "MemoryAdapter",
    "RedisAdapter",
    "RemoteSocket",
    "redis_adapter",
]

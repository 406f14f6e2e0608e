"""Who is in which room and how a broadcast reaches them: memory (one process), redis (cluster)."""

from salas.adapter.base import Adapter, AdapterFactory, BroadcastOptions
from salas.adapter.memory import MemoryAdapter

__all__ = ["Adapter", "AdapterFactory", "BroadcastOptions", "MemoryAdapter"]

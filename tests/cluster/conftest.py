"""Fixtures of the cluster tests: local hubs (salas.cluster.hub) on private sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from salas.cluster.hub import LocalHub


@pytest.fixture
async def start_hub() -> AsyncIterator[Callable[..., Awaitable[LocalHub]]]:
    """Starts a `LocalHub` with the given limits; each is closed afterwards."""
    started: list[LocalHub] = []

    async def start(**limits: Any) -> LocalHub:
        hub = LocalHub(**limits)
        started.append(hub)
        await hub.start()
        return hub

    yield start
    for hub in started:
        await hub.close()


@pytest.fixture
async def hub(start_hub: Callable[..., Awaitable[LocalHub]]) -> LocalHub:
    """A `LocalHub` with the default limits."""
    return await start_hub()


@pytest.fixture
async def client(hub: LocalHub) -> AsyncIterator[aioredis.Redis]:
    """redis-py's asyncio client of `hub`, as a worker makes it."""
    redis = aioredis.from_url(hub.url)
    yield redis
    await redis.aclose()

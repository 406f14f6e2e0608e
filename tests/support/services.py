"""What the tests need outside Python: Node.js and npm's client, Chromium, a C compiler,
nginx, PostgreSQL and Redis.

A test whose service is missing is skipped, saying why; with ``SALAS_REQUIRE_SERVICES=1``
(CI, ``.ci/run``) it fails instead, so that nothing is quietly left out there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = [
    "POSTGRES_CANDIDATES",
    "REDIS_URL",
    "ROOT",
    "SBIN",
    "probe_postgres",
    "probe_redis",
    "require_c_compiler",
    "require_nginx",
    "require_node",
    "services_required",
    "unavailable",
]

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)
REDIS_URL = os.environ.get("SALAS_TEST_REDIS", "redis://127.0.0.1:6379/0")
# Where Debian puts nginx; not on a non-root user's PATH.
SBIN = "/usr/sbin"


def services_required() -> bool:
    """Whether a missing service fails the test (``SALAS_REQUIRE_SERVICES=1``)."""
    return os.environ.get("SALAS_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip the running test for `reason`, or fail it when services are required."""
    if services_required():
        pytest.fail(f"{reason} (SALAS_REQUIRE_SERVICES=1: every service is required)")
    pytest.skip(reason)


def require_node() -> str:
    """The path of `node`, with npm's socket.io-client installed beside the checkout."""
    node = shutil.which("node")
    if node is None:
        unavailable("`node` is not on PATH (scripts/setup.sh --test)")
    if not (ROOT / "node_modules" / "socket.io-client").is_dir():
        unavailable("npm's socket.io-client is not installed (scripts/setup.sh --test)")
    return node


def require_c_compiler() -> str:
    """The path of a C compiler (the load generators are C)."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        unavailable("no C compiler (gcc or cc) on PATH: the load generators are C")
    return compiler


def require_nginx() -> str:
    """The path of Debian's `nginx` (in /usr/sbin, which a non-root PATH may lack)."""
    nginx = shutil.which("nginx") or shutil.which("nginx", path=SBIN)
    if nginx is None:
        unavailable("`nginx` is not installed (scripts/setup.sh --test installs Debian's)")
    return nginx


def probe_postgres() -> str:
    """A PostgreSQL URL that accepts a connection: ``SALAS_TEST_POSTGRES_URL`` or, failing
    that, the first of `POSTGRES_CANDIDATES` that answers. Runs its own event loop (call it
    from synchronous code, e.g. a session fixture)."""
    import asyncpg  # the postgres extra; absent from a core-only install

    explicit = os.environ.get("SALAS_TEST_POSTGRES_URL")
    candidates = (explicit,) if explicit else POSTGRES_CANDIDATES
    errors: list[str] = []

    async def probe(url: str) -> None:
        conn = await asyncpg.connect(url, timeout=3)
        await conn.close()

    for url in candidates:
        # Only "cannot connect" means unreachable; anything else is a bug to see.
        try:
            asyncio.run(probe(url))
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
        else:
            return url
    unavailable("PostgreSQL unreachable: " + "; ".join(errors))


def probe_redis() -> str:
    """`REDIS_URL` when a Redis server answers a PING there."""
    import redis  # the redis extra; absent from a core-only install

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (OSError, redis.RedisError) as exc:
        unavailable(f"Redis unreachable at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


async def delete_redis_keys(url: str, prefix: str) -> None:
    """Delete every key under `prefix` on the Redis at `url` (a test's leftovers)."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def kill_redis_clients_named(url: str, name: str) -> int:
    """CLIENT KILL every connection named `name` on the Redis at `url`; how many there were."""
    import redis.asyncio as aioredis

    admin = aioredis.from_url(url)
    try:
        killed = 0
        for client in await admin.client_list():
            if client.get("name") == name:
                await admin.execute_command("CLIENT", "KILL", "ID", client["id"])
                killed += 1
        return killed
    finally:
        await admin.aclose()

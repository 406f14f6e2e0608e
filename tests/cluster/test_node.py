"""salas.cluster.node: a node stops for good even when its Redis client swallows a cancel."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

from salas.cluster.node import ClusterNode, Write


async def test_close_ends_when_a_command_swallowed_the_cancellation(redis_url: str) -> None:
    """redis-py can swallow the cancellation of a command it is running; the writer task then
    went back to its queue and close() waited on it for ever."""
    node = ClusterNode(redis_url, f"salas-test-node:{secrets.token_hex(4)}")
    await node.start()
    in_command = asyncio.Event()

    async def swallowing_apply(write: Write) -> None:
        in_command.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)

    node._apply = swallowing_apply  # type: ignore[method-assign]
    node.send("test", {"n": 1})
    await asyncio.wait_for(in_command.wait(), 2)
    loop = asyncio.get_running_loop()
    began = loop.time()
    # (not wait_for: the old close swallowed wait_for's cancellation as well, and returned)
    closing = loop.create_task(node.close())
    await asyncio.wait({closing}, timeout=5)
    assert closing.done() and loop.time() - began < 2
    assert node._tasks == [] and node._redis is None

"""The chat's cluster-wide broadcast claim (salas.chat.app._ClusterClaim) on a real Redis."""

from __future__ import annotations

import secrets

from salas.chat.app import CLAIM_TTL, _ClusterClaim
from salas.cluster.node import ClusterNode
from salas.store.base import StoredMessage
from tests.support.services import probe_redis


async def test_a_message_is_claimed_once_and_the_claim_expires() -> None:
    """The first node takes a message's broadcast, a second take is refused, and the claim
    key expires within CLAIM_TTL (one key per message: the TTL bounds Redis's memory)."""
    node = ClusterNode(probe_redis(), f"salas-test-claim:{secrets.token_hex(4)}")
    await node.start()
    try:
        claim = _ClusterClaim(node)
        message = StoredMessage(7, "room", "hi", "ana", 1, client_id="c-1")
        assert await claim.take(message) is True
        assert await claim.take(message) is False
        ttl = await node.redis.ttl(node.key("sent", "7"))
        assert 0 < ttl <= CLAIM_TTL <= 3600
        await claim.release(message)
        assert await claim.take(message) is True  # released: a retry may take it
    finally:
        await node.redis.delete(node.key("sent", "7"))
        await node.close()

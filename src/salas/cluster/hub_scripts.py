"""The local hub's twins of salas' Lua scripts: the hub runs no Lua.

The cluster code runs four scripts in Redis (:mod:`salas.cluster.scripts`): SEQUENCE_SCRIPT
(number and publish a recovery broadcast), ACQUIRE_SCRIPT (take a room's lock, or wait in
its list of waiters), RELEASE_SCRIPT (release it if still held, and tell its waiters) and
SEQUENCE_AND_RELEASE_SCRIPT (the first, then the last). The hub knows each by its SHA1, as
Redis's script cache does (``EVALSHA``, ``SCRIPT LOAD``, ``SCRIPT EXISTS``), and runs a
Python function doing what the script does, command for command, through `call`
(``redis.call``: a command's error ends the script). The hub is single-threaded, so a twin
runs as a script does: nothing else in between. Any other script is unknown to the hub.

tests/cluster/test_hub_scripts.py runs each script on a real Redis and its twin on the hub
with the same inputs and compares what they answer and leave behind, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from salas.adapter.redis_pipe import sha1_of
from salas.cluster.hub_commands import CommandError, Reply
from salas.cluster.scripts import (
    ACQUIRE_SCRIPT,
    RELEASE_SCRIPT,
    SEQUENCE_AND_RELEASE_SCRIPT,
    SEQUENCE_SCRIPT,
)

__all__ = ["SCRIPTS", "Call", "Twin", "sha1_of"]

Call: TypeAlias = Callable[..., Reply]
"""Runs one command (its words as bytes) as ``redis.call`` does: its reply, or raises
:class:`CommandError`."""

Twin: TypeAlias = Callable[[Call, list[bytes], list[bytes]], Reply]
"""A script's Python twin: (call, KEYS, ARGV) -> what the script returns."""


def _sequence(call: Call, keys: list[bytes], argv: list[bytes]) -> Reply:
    """SEQUENCE_SCRIPT: the next offset above the floor, published before the message."""
    offset = call(b"INCR", keys[0])
    assert isinstance(offset, int)
    try:
        floor = int(argv[1])  # (tonumber: the floor is always an integer here)
    except ValueError:
        raise CommandError("ERR the floor (ARGV[2]) is not a number") from None
    if offset <= floor:
        offset = floor + 1
        call(b"SET", keys[0], b"%d" % offset)
    call(b"PUBLISH", keys[1], b"%d %s" % (offset, argv[0]))
    return offset


def _acquire(call: Call, keys: list[bytes], argv: list[bytes]) -> Reply:
    """ACQUIRE_SCRIPT: take the lock, or add this node to its waiters for a lease."""
    if call(b"SET", keys[0], argv[0], b"NX", b"PX", argv[1]) is not None:
        return 1
    call(b"SADD", keys[1], argv[2])
    call(b"PEXPIRE", keys[1], argv[1])
    return 0


def _release(call: Call, keys: list[bytes], argv: list[bytes]) -> Reply:
    """RELEASE_SCRIPT: delete the lock only if it still holds the token, then tell each
    waiting node the room's name on its channel."""
    if call(b"GET", keys[0]) != argv[0]:
        return 0
    call(b"DEL", keys[0])
    waiting = call(b"SMEMBERS", keys[1])
    assert isinstance(waiting, list)
    if waiting:
        call(b"DEL", keys[1])
        for node in waiting:
            assert isinstance(node, bytes)
            call(b"PUBLISH", argv[1] + node, argv[2])
    return 1


def _sequence_and_release(call: Call, keys: list[bytes], argv: list[bytes]) -> Reply:
    """SEQUENCE_AND_RELEASE_SCRIPT: the sequence's publish, then the release; both answers."""
    offset = _sequence(call, keys[:2], argv[:2])
    return [offset, _release(call, keys[2:4], argv[2:5])]


#: The twins by the SHA1 of their script's text.
SCRIPTS: dict[str, Twin] = {
    sha1_of(SEQUENCE_SCRIPT): _sequence,
    sha1_of(ACQUIRE_SCRIPT): _acquire,
    sha1_of(RELEASE_SCRIPT): _release,
    sha1_of(SEQUENCE_AND_RELEASE_SCRIPT): _sequence_and_release,
}

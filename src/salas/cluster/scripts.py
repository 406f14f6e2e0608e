"""salas' Lua scripts, run in Redis (and by their Python twins in the local hub).

- :data:`SEQUENCE_SCRIPT` numbers a recovery broadcast and publishes it in one step
  (:mod:`salas.cluster.offsets` says why);
- :data:`ACQUIRE_SCRIPT` takes a room's lock, or lists the node among the room's waiters;
- :data:`RELEASE_SCRIPT` releases the lock if the caller still holds it and tells each
  waiting node (:mod:`salas.cluster.ordering` says why);
- :data:`SEQUENCE_AND_RELEASE_SCRIPT` does the first and then the last in one step: a
  node's last queued post in a room publishes its message and ends its turn at the room
  with one command instead of two (:mod:`salas.cluster.turns`).

The steps are Lua functions written once here and composed into the scripts, so the
combined script does exactly what the two it combines do.
"""

from __future__ import annotations

__all__ = [
    "ACQUIRE_SCRIPT",
    "RELEASE_SCRIPT",
    "SEQUENCE_AND_RELEASE_SCRIPT",
    "SEQUENCE_SCRIPT",
]

# sequence(counter, channel, message, floor): the counter's next value, above `floor` (a
# Redis that restarted empty does not hand out offsets clients already hold), published
# as "<offset> <message>" on the channel; returns the offset.
_SEQUENCE = """
local function sequence(counter, channel, message, floor)
  local offset = redis.call('INCR', counter)
  floor = tonumber(floor)
  if offset <= floor then
    offset = floor + 1
    redis.call('SET', counter, offset)
  end
  redis.call('PUBLISH', channel, offset .. ' ' .. message)
  return offset
end
"""

# release(lock, waiters, token, prefix, room): deletes the lock only if it still holds
# `token` (1, else 0), then tells each waiting node, on its channel (`prefix` and its id),
# the room's name.
_RELEASE = """
local function release(lock, waiters, token, prefix, room)
  if redis.call('GET', lock) ~= token then return 0 end
  redis.call('DEL', lock)
  local waiting = redis.call('SMEMBERS', waiters)
  if #waiting > 0 then
    redis.call('DEL', waiters)
    for _, node in ipairs(waiting) do
      redis.call('PUBLISH', prefix .. node, room)
    end
  end
  return 1
end
"""

#: KEYS: the counter, the channel. ARGV: the message, the floor. Publishes
#: ``b"<offset> <message>"`` and returns the offset.
SEQUENCE_SCRIPT = _SEQUENCE + "return sequence(KEYS[1], KEYS[2], ARGV[1], ARGV[2])\n"

#: KEYS: the lock, its waiters. ARGV: the token, the lease (ms), this node's id. Takes the lock
#: (1), or lists the node among the waiters, for as long as a lease (0).
ACQUIRE_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 0
"""

#: KEYS: the lock, its waiters. ARGV: the holder's token, the channel prefix of the nodes'
#: words, the room. Deletes the lock only if it is still the holder's (1, else 0), and then
#: tells each waiting node, on its channel (the prefix and its id), the room's name.
RELEASE_SCRIPT = _RELEASE + "return release(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])\n"

#: KEYS: the counter, the channel, the lock, its waiters. ARGV: the message, the floor, the
#: holder's token, the channel prefix of the nodes' words, the room. SEQUENCE_SCRIPT, then
#: RELEASE_SCRIPT; returns ``{offset, released}`` (released: 1, or 0 when the lock was no
#: longer the holder's).
SEQUENCE_AND_RELEASE_SCRIPT = (
    _SEQUENCE
    + _RELEASE
    + "local offset = sequence(KEYS[1], KEYS[2], ARGV[1], ARGV[2])\n"
    + "return {offset, release(KEYS[3], KEYS[4], ARGV[3], ARGV[4], ARGV[5])}\n"
)

"""The local hub's keys and the Redis commands on them (`salas.cluster.hub`).

:class:`Keyspace` holds what the cluster code keeps in Redis — strings, hashes and sets —
each key with an optional deadline: a key past its deadline is gone on the next access, and
:meth:`Keyspace.sweep` removes the ones nobody reads again (a heap of deadlines, so a sweep
costs what it removes), so keys set to expire do not hold memory.

:data:`COMMANDS` are the data commands the cluster code sends (through redis-py), with Redis's
replies and errors, on RESP2: ``SET`` (``NX``/``XX``/``GET``/``EX``/``PX``), ``GET``,
``DEL``, ``EXISTS``, ``PEXPIRE`` (no options), ``INCR``, ``HSET``, ``HDEL``, ``HKEYS``,
``HGETALL``, ``SADD``, ``SREM``, ``SMEMBERS``. The hub adds its connection, pub/sub,
transaction and script commands.
"""

from __future__ import annotations

import heapq
import re
import time
from collections.abc import Callable
from typing import NamedTuple, TypeAlias

__all__ = [
    "COMMANDS",
    "OK",
    "Command",
    "CommandError",
    "Keyspace",
    "Raw",
    "Reply",
    "arity_error",
    "fits",
    "parse_integer",
]


class Raw(bytes):
    """A reply already in RESP (``+OK\\r\\n``...), written as it is."""


class CommandError(Exception):
    """A command's error reply: `message` starts with its code (``ERR``, ``WRONGTYPE``...).

    Args:
        message: The reply's text, without the leading ``-`` or the line end.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


Reply: TypeAlias = "Raw | bytes | int | CommandError | list[Reply] | None"
"""What a command answers: a RESP status (:class:`Raw`), a bulk string, an integer, nil, an
error, or an array of these."""

OK = Raw(b"+OK\r\n")
_WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
_NOT_INTEGER = "ERR value is not an integer or out of range"
# Redis's integers: a sign, no leading zero, 64 bits.
_INTEGER = re.compile(rb"-?(?:0|[1-9][0-9]{0,18})")
_INT64 = (-(2**63), 2**63 - 1)

Value: TypeAlias = "bytes | dict[bytes, bytes] | set[bytes]"


def fits(arity: int, args: list[bytes]) -> bool:
    """Whether `args` (the command's name first) has a count of words `arity` allows, as
    Redis states arities: n, exactly n words; -n, at least n."""
    return len(args) == arity if arity > 0 else len(args) >= -arity


def arity_error(name: bytes) -> CommandError:
    """Redis's error for a command given the wrong number of arguments."""
    return CommandError(f"ERR wrong number of arguments for '{_shown(name)}' command")


def _shown(name: bytes) -> str:
    """A command name fit for an error line (printable, bounded)."""
    return name[:64].decode("ascii", "replace").lower().encode("unicode_escape").decode()


def parse_integer(raw: bytes) -> int:
    """`raw` as Redis reads an integer argument; CommandError if it is not one."""
    if _INTEGER.fullmatch(raw) is None:
        raise CommandError(_NOT_INTEGER)
    value = int(raw)
    if not _INT64[0] <= value <= _INT64[1]:
        raise CommandError(_NOT_INTEGER)
    return value


class Keyspace:
    """The hub's keys: strings, hashes and sets, each with an optional deadline.

    Args:
        clock: Seconds, monotonic (deadlines are on this clock).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._values: dict[bytes, Value] = {}
        self._deadlines: dict[bytes, float] = {}
        # (deadline, key) for every deadline set; an entry whose key has another deadline
        # now (or none) is stale and skipped when popped.
        self._heap: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: bytes) -> Value | None:
        """The value of `key`, or None when it is absent or past its deadline."""
        value = self._values.get(key)
        if value is not None and key in self._deadlines and self._deadlines[key] <= self.clock():
            self.remove(key)
            return None
        return value

    def put(
        self, key: bytes, value: Value, ttl: float | None = None, *, keep_ttl: bool = False
    ) -> None:
        """Set `key` to `value`, expiring `ttl` seconds from now (None: never, or with
        `keep_ttl` its current deadline)."""
        self._values[key] = value
        if ttl is not None:
            deadline = self.clock() + ttl
            self._deadlines[key] = deadline
            heapq.heappush(self._heap, (deadline, key))
        elif not keep_ttl:
            self._deadlines.pop(key, None)

    def remove(self, key: bytes) -> bool:
        """Delete `key`; whether it was there (past its deadline counts as absent)."""
        value = self._values.pop(key, None)
        deadline = self._deadlines.pop(key, None)
        return value is not None and (deadline is None or deadline > self.clock())

    def sweep(self, limit: int = 10_000) -> int:
        """Remove up to `limit` keys past their deadline; how many deadlines were looked at
        (as many as `limit`: call again soon)."""
        now = self.clock()
        heap = self._heap
        seen = 0
        while heap and heap[0][0] <= now and seen < limit:
            deadline, key = heapq.heappop(heap)
            seen += 1
            if self._deadlines.get(key) == deadline:
                del self._deadlines[key]
                del self._values[key]
        return seen

    def typed(self, key: bytes, kind: type[Value]) -> Value | None:
        """The value of `key` if it is of `kind`, None if absent; WRONGTYPE otherwise."""
        value = self.get(key)
        if value is not None and not isinstance(value, kind):
            raise CommandError(_WRONGTYPE)
        return value


# -- the commands -----------------------------------------------------------------------------
def _get(keys: Keyspace, args: list[bytes]) -> Reply:
    value = keys.typed(args[1], bytes)
    assert value is None or isinstance(value, bytes)
    return value


def _set(keys: Keyspace, args: list[bytes]) -> Reply:
    key, value = args[1], args[2]
    nx = xx = get = keep_ttl = False
    ttl: float | None = None
    options = iter(args[3:])
    for raw in options:
        option = raw.upper()
        if option == b"NX" and not xx:
            nx = True
        elif option == b"XX" and not nx:
            xx = True
        elif option == b"GET":
            get = True
        elif option == b"KEEPTTL" and ttl is None:
            keep_ttl = True
        elif option in (b"EX", b"PX") and ttl is None and not keep_ttl:
            amount = next(options, None)
            if amount is None:
                raise CommandError("ERR syntax error")
            number = parse_integer(amount)
            if number <= 0:
                raise CommandError("ERR invalid expire time in 'set' command")
            ttl = number if option == b"EX" else number / 1000
        else:
            raise CommandError("ERR syntax error")
    current = keys.typed(key, bytes) if get else keys.get(key)
    old = current if isinstance(current, bytes) else None
    if (nx and current is not None) or (xx and current is None):
        return old if get else None
    keys.put(key, value, ttl, keep_ttl=keep_ttl)
    return old if get else OK


def _del(keys: Keyspace, args: list[bytes]) -> Reply:
    return sum(keys.remove(key) for key in args[1:])


def _pexpire(keys: Keyspace, args: list[bytes]) -> Reply:
    """PEXPIRE key milliseconds (no options): 1 if the key exists (deleted at once for a
    deadline not in the future), 0 if not."""
    milliseconds = parse_integer(args[2])
    value = keys.get(args[1])
    if value is None:
        return 0
    if milliseconds <= 0:
        keys.remove(args[1])
    else:
        keys.put(args[1], value, milliseconds / 1000)
    return 1


def _exists(keys: Keyspace, args: list[bytes]) -> Reply:
    return sum(keys.get(key) is not None for key in args[1:])


def _incr(keys: Keyspace, args: list[bytes]) -> Reply:
    value = keys.typed(args[1], bytes)
    number = parse_integer(value) if isinstance(value, bytes) else 0
    if number == _INT64[1]:
        raise CommandError("ERR increment or decrement would overflow")
    keys.put(args[1], b"%d" % (number + 1), keep_ttl=True)
    return number + 1


def _hash(keys: Keyspace, key: bytes) -> dict[bytes, bytes] | None:
    value = keys.typed(key, dict)
    assert value is None or isinstance(value, dict)
    return value


def _hset(keys: Keyspace, args: list[bytes]) -> Reply:
    if len(args) % 2:
        raise arity_error(args[0])
    table = _hash(keys, args[1])
    if table is None:
        table = {}
        keys.put(args[1], table, keep_ttl=True)
    added = 0
    for index in range(2, len(args), 2):
        added += args[index] not in table
        table[args[index]] = args[index + 1]
    return added


def _hdel(keys: Keyspace, args: list[bytes]) -> Reply:
    table = _hash(keys, args[1])
    if table is None:
        return 0
    removed = sum(table.pop(field, None) is not None for field in args[2:])
    if not table:
        keys.remove(args[1])
    return removed


def _hkeys(keys: Keyspace, args: list[bytes]) -> Reply:
    return list(_hash(keys, args[1]) or ())


def _hgetall(keys: Keyspace, args: list[bytes]) -> Reply:
    return [item for pair in (_hash(keys, args[1]) or {}).items() for item in pair]


def _members(keys: Keyspace, key: bytes) -> set[bytes] | None:
    value = keys.typed(key, set)
    assert value is None or isinstance(value, set)
    return value


def _sadd(keys: Keyspace, args: list[bytes]) -> Reply:
    members = _members(keys, args[1])
    if members is None:
        members = set()
        keys.put(args[1], members, keep_ttl=True)
    before = len(members)
    members.update(args[2:])
    return len(members) - before


def _srem(keys: Keyspace, args: list[bytes]) -> Reply:
    members = _members(keys, args[1])
    if members is None:
        return 0
    before = len(members)
    members.difference_update(args[2:])
    if not members:
        keys.remove(args[1])
    return before - len(members)


def _smembers(keys: Keyspace, args: list[bytes]) -> Reply:
    return list(_members(keys, args[1]) or ())


class Command(NamedTuple):
    """A command: what runs it, and its arity as Redis states it (n: exactly n words, the
    name included; -n: at least n)."""

    run: Callable[[Keyspace, list[bytes]], Reply]
    arity: int

    def fits(self, args: list[bytes]) -> bool:
        """Whether `args` (the name first) has a count of words this command takes."""
        return fits(self.arity, args)


#: The data commands by their upper-case name.
COMMANDS: dict[bytes, Command] = {
    b"GET": Command(_get, 2),
    b"SET": Command(_set, -3),
    b"DEL": Command(_del, -2),
    b"EXISTS": Command(_exists, -2),
    b"PEXPIRE": Command(_pexpire, 3),
    b"INCR": Command(_incr, 2),
    b"HSET": Command(_hset, -4),
    b"HDEL": Command(_hdel, -3),
    b"HKEYS": Command(_hkeys, 2),
    b"HGETALL": Command(_hgetall, 2),
    b"SADD": Command(_sadd, -3),
    b"SREM": Command(_srem, -3),
    b"SMEMBERS": Command(_smembers, 2),
}

"""The local hub's keys and data commands (salas.cluster.hub_commands), on a clock the tests
move: deadlines, lazy expiry, sweeps, and Redis's answers and errors."""

from __future__ import annotations

import pytest

from salas.cluster.hub_commands import COMMANDS, OK, CommandError, Keyspace, Reply, fits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys(clock: Clock) -> Keyspace:
    return Keyspace(clock)


def run(keys: Keyspace, *words: bytes | str | int) -> Reply:
    """Run one command as the hub does (arity checked first); an error is returned."""
    args = [w if isinstance(w, bytes) else str(w).encode() for w in words]
    command = COMMANDS[args[0].upper()]
    assert command.fits(args), args
    try:
        return command.run(keys, args)
    except CommandError as exc:
        return exc


def error(reply: Reply) -> str:
    assert isinstance(reply, CommandError), reply
    return reply.message


# -- expiry -----------------------------------------------------------------------------------
def test_a_key_is_gone_at_its_deadline_without_a_sweep(keys: Keyspace, clock: Clock) -> None:
    """SET PX: the key answers until its deadline and is absent from then on (GET, EXISTS)."""
    assert run(keys, "SET", "k", "v", "PX", 1500) is OK
    clock.now += 1.499
    assert run(keys, "GET", "k") == b"v"
    clock.now += 0.001
    assert run(keys, "GET", "k") is None
    assert run(keys, "EXISTS", "k") == 0
    assert len(keys) == 0  # the read removed it


def test_a_sweep_removes_expired_keys_nobody_reads(keys: Keyspace, clock: Clock) -> None:
    """Keys that expire are freed by the sweep alone; others stay; a sweep does at most its
    limit and says so."""
    for n in range(30):
        run(keys, "SET", f"t{n}", "v", "EX", 10)
    run(keys, "SET", "forever", "v")
    clock.now += 10
    assert keys.sweep(limit=20) == 20
    assert len(keys) == 11
    assert keys.sweep(limit=20) == 10
    assert len(keys) == 1 and run(keys, "GET", "forever") == b"v"
    assert keys.sweep() == 0


def test_a_key_set_again_keeps_only_its_latest_deadline(keys: Keyspace, clock: Clock) -> None:
    """SET again without a TTL removes the deadline (the old one swept is stale); with a new
    TTL the new deadline counts."""
    run(keys, "SET", "a", "1", "EX", 5)
    run(keys, "SET", "a", "2")
    run(keys, "SET", "b", "1", "EX", 5)
    run(keys, "SET", "b", "2", "EX", 50)
    clock.now += 6
    keys.sweep()
    assert run(keys, "GET", "a") == b"2" and run(keys, "GET", "b") == b"2"
    clock.now += 50
    keys.sweep()
    assert run(keys, "GET", "b") is None and len(keys) == 1


def test_incr_and_hash_writes_keep_the_deadline(keys: Keyspace, clock: Clock) -> None:
    """INCR keeps the key's TTL, as Redis does; KEEPTTL too."""
    run(keys, "SET", "n", "5", "EX", 10)
    assert run(keys, "INCR", "n") == 6
    run(keys, "SET", "n", "9", "KEEPTTL")
    clock.now += 10
    assert run(keys, "GET", "n") is None


def test_delete_counts_only_live_keys(keys: Keyspace, clock: Clock) -> None:
    """DEL of an expired key counts 0, as it is already gone."""
    run(keys, "SET", "old", "v", "PX", 1)
    run(keys, "SET", "new", "v")
    clock.now += 1
    assert run(keys, "DEL", "old", "new", "none") == 1


# -- SET ------------------------------------------------------------------------------------
def test_set_nx_xx_and_get(keys: Keyspace) -> None:
    """NX sets only a new key, XX only an existing one; GET answers the old value."""
    assert run(keys, "SET", "k", "1", "NX") is OK
    assert run(keys, "SET", "k", "2", "NX") is None
    assert run(keys, "SET", "k", "3", "XX", "GET") == b"1"
    assert run(keys, "SET", "z", "3", "XX") is None and run(keys, "GET", "z") is None
    assert run(keys, "SET", "k", "4", "NX", "GET") == b"3"
    assert run(keys, "GET", "k") == b"3"
    assert run(keys, "SET", "new", "v", "GET") is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["NX", "XX"], "ERR syntax error"),
        (["EX"], "ERR syntax error"),
        (["EX", "1", "PX", "5"], "ERR syntax error"),
        (["BOGUS"], "ERR syntax error"),
        (["EX", "0"], "ERR invalid expire time in 'set' command"),
        (["PX", "-5"], "ERR invalid expire time in 'set' command"),
        (["EX", "1.5"], "ERR value is not an integer or out of range"),
        (["EX", "99999999999999999999"], "ERR value is not an integer or out of range"),
    ],
)
def test_set_refuses_bad_options(keys: Keyspace, options: list[str], message: str) -> None:
    """Options that contradict or do not parse are Redis's errors; nothing is set."""
    assert error(run(keys, "SET", "k", "v", *options)) == message
    assert run(keys, "GET", "k") is None


# -- types ----------------------------------------------------------------------------------
def test_commands_on_the_wrong_kind_of_value_are_wrongtype(keys: Keyspace) -> None:
    """A string, a hash and a set each refuse the others' commands; SET replaces any."""
    run(keys, "SET", "s", "v")
    run(keys, "HSET", "h", "f", "v")
    run(keys, "SADD", "m", "a")
    for words in (
        ("HSET", "s", "f", "v"),
        ("SADD", "h", "a"),
        ("GET", "m"),
        ("INCR", "h"),
        ("SMEMBERS", "s"),
        ("HGETALL", "m"),
        ("SET", "h", "v", "GET"),
    ):
        assert error(run(keys, *words)).startswith("WRONGTYPE"), words
    assert run(keys, "SET", "h", "v") is OK and run(keys, "GET", "h") == b"v"


def test_incr_counts_and_refuses_what_is_not_an_integer(keys: Keyspace) -> None:
    """INCR from nothing, on a number, then Redis's errors for text, spaces and overflow."""
    assert run(keys, "INCR", "n") == 1
    assert run(keys, "INCR", "n") == 2
    assert run(keys, "GET", "n") == b"2"
    for bad in ("x", " 1", "01", "1.0", "+1"):
        run(keys, "SET", "b", bad)
        assert error(run(keys, "INCR", "b")) == "ERR value is not an integer or out of range"
    run(keys, "SET", "max", str(2**63 - 1))
    assert error(run(keys, "INCR", "max")) == "ERR increment or decrement would overflow"


def test_hashes(keys: Keyspace) -> None:
    """HSET counts new fields, HDEL removed ones; the hash goes with its last field."""
    assert run(keys, "HSET", "h", "a", "1", "b", "2") == 2
    assert run(keys, "HSET", "h", "a", "3") == 0
    assert run(keys, "HGETALL", "h") == [b"a", b"3", b"b", b"2"]
    assert run(keys, "HKEYS", "h") == [b"a", b"b"]
    assert run(keys, "HDEL", "h", "a", "zz") == 1
    assert run(keys, "HDEL", "h", "b") == 1
    assert run(keys, "EXISTS", "h") == 0
    assert run(keys, "HGETALL", "none") == [] and run(keys, "HDEL", "none", "f") == 0
    assert error(run(keys, "HSET", "h", "a", "1", "b")).startswith("ERR wrong number")


def test_sets(keys: Keyspace) -> None:
    """SADD counts new members, SREM removed ones; the set goes with its last member."""
    assert run(keys, "SADD", "s", "a", "b", "a") == 2
    assert sorted(run(keys, "SMEMBERS", "s") or []) == [b"a", b"b"]  # type: ignore[type-var]
    assert run(keys, "SREM", "s", "a", "c") == 1
    assert run(keys, "SREM", "s", "b") == 1
    assert run(keys, "EXISTS", "s", "s") == 0
    assert run(keys, "SMEMBERS", "none") == [] and run(keys, "SREM", "none", "a") == 0


def test_pexpire_sets_a_deadline_on_a_key_that_exists(keys: Keyspace, clock: Clock) -> None:
    """PEXPIRE: 0 for a missing key; 1 and a deadline for a set, which goes at it; a
    deadline not in the future deletes at once; a count that is not a number is refused."""
    assert run(keys, "PEXPIRE", "none", 100) == 0
    run(keys, "SADD", "s", "a")
    assert run(keys, "PEXPIRE", "s", 100) == 1
    clock.now += 0.099
    assert run(keys, "SMEMBERS", "s") == [b"a"]
    clock.now += 0.001
    assert run(keys, "SMEMBERS", "s") == [] and len(keys) == 0
    run(keys, "SET", "k", "v")
    assert run(keys, "PEXPIRE", "k", 0) == 1
    assert run(keys, "GET", "k") is None
    assert "not an integer" in error(run(keys, "PEXPIRE", "k", "soon"))


def test_exists_counts_each_key_named(keys: Keyspace) -> None:
    """EXISTS counts a key as often as it is named, as Redis does."""
    run(keys, "SET", "a", "1")
    assert run(keys, "EXISTS", "a", "a", "b") == 2


def test_arities() -> None:
    """Exact and minimum arities, as Redis states them."""
    assert fits(2, [b"GET", b"k"]) and not fits(2, [b"GET"]) and not fits(2, [b"GET", b"a", b"b"])
    assert fits(-2, [b"DEL", b"a"]) and fits(-2, [b"DEL", b"a", b"b"]) and not fits(-2, [b"DEL"])

"""Claims (salas.auth.claims): validation of each claim, defaults, the dict on the socket,
and who may enter a private room."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from salas.auth import AuthError, Claims
from salas.auth.claims import MAX_NAME, MAX_ROOM_PATTERNS, MAX_SUB


def reason(payload: dict[str, Any]) -> str:
    with pytest.raises(AuthError) as caught:
        Claims.from_payload(payload)
    return caught.value.reason


def test_defaults() -> None:
    """Only sub: name is sub, no rooms, member, no exp."""
    assert Claims.from_payload({"sub": "u1"}) == Claims("u1", "u1", (), "member", None)


def test_full_claims_are_kept_and_stripped() -> None:
    """Every claim is read; names are stripped; unknown claims are ignored."""
    claims = Claims.from_payload(
        {
            "sub": " u1 ",
            "name": " Ada 👩‍💻 ",
            "rooms": ["ops", "staff-*"],
            "role": "moderator",
            "exp": 1700000000,
            "email": "x@example.org",
        }
    )
    assert claims == Claims("u1", "Ada 👩‍💻", ("ops", "staff-*"), "moderator", 1700000000.0)


def test_blank_name_means_sub_and_long_sub_is_cut() -> None:
    """An empty name falls back to sub, cut to the display-name bound."""
    long_sub = "auth0|" + "x" * 100
    claims = Claims.from_payload({"sub": long_sub, "name": "   "})
    assert claims.sub == long_sub and claims.name == long_sub[:MAX_NAME]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({}, "missing sub"),
        ({"sub": None}, "missing sub"),
        ({"sub": 12}, "bad sub"),
        ({"sub": ""}, "bad sub"),
        ({"sub": "a\x00b"}, "bad sub"),
        ({"sub": "x" * (MAX_SUB + 1)}, "bad sub"),
        ({"sub": "u", "name": "n" * (MAX_NAME + 1)}, "bad name"),
        ({"sub": "u", "name": "evil\u202egnp.exe"}, "bad name"),
        ({"sub": "u", "name": "two\nlines"}, "bad name"),
        ({"sub": "u", "name": 5}, "bad name"),
        ({"sub": "u", "rooms": "ops"}, "bad rooms"),
        ({"sub": "u", "rooms": ["ops", 3]}, "bad rooms"),
        ({"sub": "u", "rooms": [""]}, "bad rooms"),
        ({"sub": "u", "rooms": ["r"] * (MAX_ROOM_PATTERNS + 1)}, "bad rooms"),
        ({"sub": "u", "role": "owner"}, "bad role"),
        ({"sub": "u", "role": "Admin"}, "bad role"),
        ({"sub": "u", "role": ["admin"]}, "bad role"),
        ({"sub": "u", "exp": "soon"}, "bad exp"),
        ({"sub": "u", "exp": True}, "bad exp"),
    ],
)
def test_bad_claims_are_refused(payload: dict[str, Any], expected: str) -> None:
    """Each malformed claim refuses the whole token with its own reason."""
    assert reason(payload) == expected


def test_to_dict_is_json_and_round_trips() -> None:
    """to_dict is plain JSON (as recovery saves socket.data) and reads back equal."""
    claims = Claims("u1", "Ada", ("ops",), "admin", 1.5)
    data = orjson.loads(orjson.dumps(claims.to_dict()))
    assert data == {"sub": "u1", "name": "Ada", "rooms": ["ops"], "role": "admin", "exp": 1.5}
    assert Claims.from_payload(data) == claims


def test_may_enter() -> None:
    """Open rooms for all; private ones by exact name, glob claim, or a moderating role."""
    private = ["staff-*", "ops"]
    member = Claims("u", "u", rooms=("ops", "staff-eu*"))
    assert member.may_enter("lobby", private)
    assert member.may_enter("ops", private)
    assert member.may_enter("staff-eu-west", private)
    assert not member.may_enter("staff-us", private)
    assert not Claims("v", "v").may_enter("ops", private)
    assert Claims("m", "m", role="moderator").may_enter("staff-us", private)
    assert Claims("a", "a", role="admin").may_enter("ops", private)


def test_may_enter_is_case_sensitive() -> None:
    """Room names are case-sensitive: a claim for "ops" does not open "OPS"."""
    claims = Claims("u", "u", rooms=("ops",))
    assert not claims.may_enter("OPS", ["OPS"])
    assert claims.may_enter("OPS", ["ops"])  # "OPS" is not private at all


def test_is_moderator() -> None:
    """moderator and admin moderate; member does not."""
    assert [Claims("u", "u", role=r).is_moderator for r in ("member", "moderator", "admin")] == [
        False,
        True,
        True,
    ]

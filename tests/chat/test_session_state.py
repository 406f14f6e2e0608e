"""What the chat keeps in socket.data for recovery: JSON only, read back strictly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from salas.chat.session_state import SavedState, load_state


def test_round_trip_through_json() -> None:
    """The saved state is plain JSON and reads back as the same state."""
    state = SavedState("ana", (("room1", "ana"), ("sala café", "ana#2")))
    data = json.loads(json.dumps(state.to_data()))
    assert data == {"name": "ana", "rooms": [["room1", "ana"], ["sala café", "ana#2"]]}
    assert load_state(data) == state


@pytest.mark.parametrize(
    "value",
    [
        None,
        "ana",
        [],
        {},
        {"name": "ana"},
        {"name": "", "rooms": []},
        {"name": " ana ", "rooms": []},
        {"name": "ana", "rooms": "room1"},
        {"name": "ana", "rooms": [["room1"]]},
        {"name": "ana", "rooms": [["room1", 5]]},
        {"name": "ana", "rooms": [["", "ana"]]},
        {"name": "ana", "rooms": [["x" * 65, "ana"]]},
        {"name": "ana", "rooms": [["room1", "ana"], ["room1", "ana"]]},
        {"name": "a\u0000", "rooms": []},
    ],
)
def test_anything_else_is_no_state(value: Any) -> None:
    """Data that is not exactly what the chat saved (wrong types, invalid or untrimmed
    names, repeated rooms) is no saved state at all."""
    assert load_state(value) is None


def test_no_rooms_is_a_state() -> None:
    """A socket that had joined nothing still has its name saved."""
    assert load_state({"name": "ana", "rooms": []}) == SavedState("ana")


def test_user_id_is_kept() -> None:
    """An anonymous socket's guest id is saved and read back; a bad one voids the state."""
    state = SavedState("ana", (), "guest-0123456789ab")
    data = json.loads(json.dumps(state.to_data()))
    assert data["user_id"] == "guest-0123456789ab"
    assert load_state(data) == state
    assert load_state({"name": "ana", "rooms": [], "user_id": 5}) is None

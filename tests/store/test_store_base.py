"""StoredMessage and the argument checks every backend shares (salas.store.base)."""

from __future__ import annotations

import dataclasses

import pytest

from salas.store import InvalidInputError, StoredMessage, StoreError
from salas.store.base import check_append, check_delete, check_history


def test_to_wire_is_the_message_event_payload() -> None:
    """to_wire gives id, channel, message, user and ts, and no client_id when there is none."""
    m = StoredMessage(7, "lobby", "hi", "ana", 1_700_000_000_000, None)
    assert m.to_wire() == {
        "id": 7,
        "channel": "lobby",
        "message": "hi",
        "user": "ana",
        "ts": 1_700_000_000_000,
    }


def test_to_wire_includes_client_id_when_set() -> None:
    """to_wire carries client_id when the message has one, so a sender can match its ack."""
    m = StoredMessage(7, "lobby", "hi", "ana", 5, "c-1")
    assert m.to_wire()["client_id"] == "c-1"


def test_stored_message_is_immutable() -> None:
    """A StoredMessage cannot be changed after the store made it."""
    m = StoredMessage(1, "lobby", "hi", "ana", 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.message = "edited"  # type: ignore[misc]


def test_invalid_input_is_both_a_store_error_and_a_value_error() -> None:
    """Callers catching StoreError also catch refused input; so do those catching ValueError."""
    assert issubclass(InvalidInputError, StoreError)
    assert issubclass(InvalidInputError, ValueError)


def test_check_append_stamps_the_draft() -> None:
    """check_append returns the validated message with the given (or current) ts."""
    draft = check_append("lobby", "hi", "ana", None, now=42)
    assert (draft.channel, draft.message, draft.user, draft.client_id, draft.ts) == (
        "lobby",
        "hi",
        "ana",
        None,
        42,
    )
    assert draft.stored(9) == StoredMessage(9, "lobby", "hi", "ana", 42, None)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, (None, None, 50)),
        ({"limit": 0}, (None, None, 1)),
        ({"limit": 501}, (None, None, 500)),
        ({"before": 2**70}, (2**63 - 1, None, 50)),
        ({"after": -(2**70)}, (None, -(2**63), 50)),
    ],
)
def test_check_history_clamps(kwargs: dict[str, int], expected: tuple[object, ...]) -> None:
    """check_history clamps limit to 1..500 and ids to 64 bits."""
    before, after = kwargs.get("before"), kwargs.get("after")
    assert check_history("lobby", before, after, kwargs.get("limit", 50)) == expected


def test_to_wire_carries_user_id_and_marks_tombstones() -> None:
    """to_wire adds user_id when set, and deleted True (with the blank text) for a tombstone."""
    live = StoredMessage(7, "lobby", "hi", "ana", 5, None, "u-ana")
    assert live.to_wire()["user_id"] == "u-ana"
    assert "deleted" not in live.to_wire()
    assert not live.deleted
    gone = StoredMessage(7, "lobby", "", "ana", 5, None, "u-ana", 9, "u-mod")
    assert gone.deleted
    assert gone.to_wire() == {
        "id": 7,
        "channel": "lobby",
        "message": "",
        "user": "ana",
        "ts": 5,
        "user_id": "u-ana",
        "deleted": True,
    }


def test_check_append_keeps_user_id() -> None:
    """check_append's draft carries user_id into the stored message."""
    draft = check_append("lobby", "hi", "ana", None, user_id="u-1", now=42)
    assert draft.stored(9).user_id == "u-1"


def test_check_delete_clamps_ids_and_refuses_non_ints() -> None:
    """check_delete clamps an id to 64 bits and refuses a missing or non-int id."""
    assert check_delete("lobby", 10**30, None) == 2**63 - 1
    assert check_delete("lobby", 3, "u-mod") == 3
    for bad in (None, "3", 2.0, False):
        with pytest.raises(InvalidInputError):
            check_delete("lobby", bad, None)  # type: ignore[arg-type]

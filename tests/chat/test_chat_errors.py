"""The chat's error type and its wire form."""

from __future__ import annotations

import pytest

from salas.chat.errors import CODES, ChatError
from tests.support.services import ROOT


def test_wire_form() -> None:
    """A ChatError becomes {code, message} for the ack and the error event."""
    assert ChatError("invalid_room", "bad room").to_wire() == {
        "code": "invalid_room",
        "message": "bad room",
    }


def test_unknown_code_is_a_bug() -> None:
    """A code outside the documented set cannot be raised (it would reach clients)."""
    with pytest.raises(ValueError):
        ChatError("invalid_rooom", "typo")


def test_codes_are_the_documented_ones() -> None:
    """Every code is listed in docs/chat-protocol.md's table of codes."""
    doc = (ROOT / "docs" / "chat-protocol.md").read_text()
    for code in CODES:
        assert f"| `{code}` |" in doc, code

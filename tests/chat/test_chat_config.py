"""ChatConfig's defaults (the documented ones) and its refusal of impossible settings."""

from __future__ import annotations

from typing import Any

import pytest

from salas.chat.config import ChatConfig


def test_defaults_match_the_protocol_doc() -> None:
    """Defaults: multi-room, 50 messages on join, a 50-event burst at 10/s, 250 ms rooms."""
    config = ChatConfig()
    assert config.single_room is False
    assert config.join_history == 50
    assert (config.message_burst, config.message_rate, config.event_cutoff) == (50, 10.0, 50)
    assert config.rooms_interval == 0.25
    assert config.typing_timeout == 5.0
    assert config.typing_throttle == 2.0


@pytest.mark.parametrize(
    "changes",
    [
        {"typing_timeout": 0},
        {"typing_throttle": -1},
        {"message_rate": -1},
        {"rooms_list_max": 0},
        {"presence_members_max": -1},
        {"event_cutoff": -1},
        {"rooms_interval": -0.1},
        {"join_history": 0},
        {"max_rooms_per_socket": 0},
        {"message_burst": 0},
    ],
)
def test_impossible_settings_are_refused(changes: dict[str, Any]) -> None:
    """Zero or negative timings, rates and sizes raise ValueError."""
    with pytest.raises(ValueError):
        ChatConfig(**changes)


def test_message_rate_zero_means_no_limit() -> None:
    """message_rate 0 is allowed: it turns the message limit off."""
    assert ChatConfig(message_rate=0).message_rate == 0

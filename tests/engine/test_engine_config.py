"""EngineConfig validation (salas.engine.config)."""

from __future__ import annotations

import pytest

from salas.engine import EngineConfig


def test_defaults() -> None:
    """The defaults are the reference server's: 25 s / 20 s heartbeat, 1 MB payload."""
    config = EngineConfig()
    assert config.path == "/engine.io/"
    assert (config.ping_interval, config.ping_timeout) == (25.0, 20.0)
    assert config.max_payload == 1_000_000
    assert config.transports == ("polling", "websocket")
    assert config.volatile_buffer <= config.max_buffer


def test_path_gets_trailing_slash() -> None:
    """A path without a trailing slash gets one."""
    assert EngineConfig(path="/socket.io").path == "/socket.io/"
    assert EngineConfig(path="/").path == "/"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"path": "socket.io/"}, "path"),
        ({"path": ""}, "path"),
        ({"ping_interval": 0}, "ping_interval"),
        ({"ping_interval": -1}, "ping_interval"),
        ({"ping_timeout": 0}, "ping_timeout"),
        ({"upgrade_timeout": -0.5}, "upgrade_timeout"),
        ({"max_payload": 0}, "max_payload"),
        ({"max_payload": -10}, "max_payload"),
        ({"max_buffer": 1000, "volatile_buffer": 1001}, "volatile_buffer"),
        ({"transports": ()}, "transports"),
        ({"transports": ("polling", "webtransport")}, "transports"),
        ({"transports": ("flash",)}, "transports"),
    ],
)
def test_invalid_settings_raise(kwargs: dict, match: str) -> None:
    """Invalid settings raise ValueError naming the setting."""
    with pytest.raises(ValueError, match=match):
        EngineConfig(**kwargs)


def test_config_is_frozen() -> None:
    """A config cannot be changed after validation."""
    config = EngineConfig()
    with pytest.raises(AttributeError):
        config.max_payload = 5  # type: ignore[misc]


def test_single_transport_accepted() -> None:
    """Either transport alone is a valid choice."""
    assert EngineConfig(transports=("websocket",)).transports == ("websocket",)
    assert EngineConfig(transports=("polling",)).transports == ("polling",)

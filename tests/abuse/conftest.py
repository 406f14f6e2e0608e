"""The abuse suite: each test starts a live `salas serve`, attacks it the way a hostile
client on the open internet would, and checks both the defence and that an honest member of
the same room is still served every message with bounded latency (docs/security.md)."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this folder is marked `abuse`."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.abuse)

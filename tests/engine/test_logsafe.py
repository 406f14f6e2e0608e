"""Client strings escaped before they reach a log (salas.engine.logsafe)."""

from __future__ import annotations

import logging

import pytest

from salas.engine.logsafe import printable


def test_control_characters_escaped() -> None:
    """Newlines, CR, NUL, ESC, DEL, C1 and line separators come out as escapes."""
    assert printable("a\nb\rc\x00d\x1b[2Je\x7ff\x85g\u2028") == (
        "a\\nb\\rc\\x00d\\x1b[2Je\\x7ff\\x85g\\u2028"
    )
    assert printable("/chat/r\u00e9sum\u00e9 ok") == "/chat/r\u00e9sum\u00e9 ok"


def test_truncated() -> None:
    """Longer than `limit`: cut, with a marker."""
    assert printable("x" * 500) == "x" * 200 + "..."
    assert printable("abc", limit=2) == "ab..."
    assert printable("ab", limit=2) == "ab"
    assert printable(ValueError("bad\nthing")) == "bad\\nthing"


def _fails(request) -> None:
    raise RuntimeError("boom")


async def test_forged_log_line_from_request_path(engine, http, caplog) -> None:
    """`GET /x%0a2026-... CRITICAL FORGED` logged through an error does not start a line
    with the forged text."""
    h = await engine(fallback=_fails)
    forged = "2026-01-01 00:00:00 CRITICAL salas FORGED"
    target = "/x%0a" + forged.replace(" ", "%20") + "%0d%00"
    with caplog.at_level(logging.INFO, logger="salas"):
        response = await http(h.port, "GET", target)
    assert response.status == 500
    messages = [record.getMessage() for record in caplog.records]
    assert any("FORGED" in message for message in messages)  # the path was logged...
    for message in messages:
        for line in message.splitlines():
            assert not line.startswith(forged)  # ...on the same line, escaped
            assert "\x00" not in line


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_honest_path_logged_as_is(engine, http, caplog, method: str) -> None:
    """A plain path is logged unchanged."""
    h = await engine(fallback=_fails)
    with caplog.at_level(logging.INFO, logger="salas"):
        await http(h.port, method, "/plain/path")
    assert any(f"{method} /plain/path" in r.getMessage() for r in caplog.records)

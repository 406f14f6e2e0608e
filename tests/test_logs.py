"""Log formats: `text` as it always was, `json` one parseable object per line."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from salas.logs import TEXT_FORMAT, JsonFormatter, configure_logging


def _record(msg: str, *args: object, **extra: Any) -> logging.LogRecord:
    logger = logging.getLogger("salas.test")
    return logger.makeRecord(
        "salas.test", logging.WARNING, __file__, 1, msg, args, None, extra=extra or None
    )


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, its handlers and level restored afterwards (configure_logging adds
    one)."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        yield root
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_json_fields() -> None:
    """A record becomes ts (ISO 8601 UTC), level, logger and the formatted message."""
    before = datetime.now(UTC) - timedelta(seconds=1)
    entry = orjson.loads(JsonFormatter().format(_record("room %r has %d members", "a", 3)))
    assert entry.keys() == {"ts", "level", "logger", "message"}
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "salas.test"
    assert entry["message"] == "room 'a' has 3 members"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"])
    ts = datetime.fromisoformat(entry["ts"].replace("Z", "+00:00"))
    assert before <= ts <= datetime.now(UTC)


def test_json_extra_fields() -> None:
    """Fields passed with extra= appear beside the standard ones, non-JSON values as text."""
    line = JsonFormatter().format(
        _record("banned", room="lobby", user={"sub": "u1", "n": 2}, until=datetime(2030, 1, 1))
    )
    entry = orjson.loads(line)
    assert entry["room"] == "lobby"
    assert entry["user"] == {"sub": "u1", "n": 2}
    assert entry["until"] == "2030-01-01T00:00:00"  # orjson's own datetime encoding
    assert "\n" not in line


def test_json_exception_text() -> None:
    """A logged exception is one field holding the traceback; the line stays one line."""
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = logging.getLogger("salas.test").makeRecord(
            "salas.test", logging.ERROR, __file__, 1, "failed", (), __import__("sys").exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = orjson.loads(line)
    assert entry["exc_info"].startswith("Traceback (most recent call last):")
    assert entry["exc_info"].endswith("ValueError: bad\nthing")


def test_json_escapes_control_characters() -> None:
    """Hostile text (newline, CR, ESC, NUL) is escaped: it cannot forge a second line."""
    hostile = 'x\n{"level": "CRITICAL"}\r\x1b[31m\x00'
    line = JsonFormatter().format(_record("nick %s", hostile, field=hostile))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x00" not in line
    entry = orjson.loads(line)
    assert entry["message"] == "nick " + hostile
    assert entry["field"] == hostile


def test_json_survives_values_orjson_refuses() -> None:
    """A lone surrogate or an over-wide int still gives a parseable line, shown as text."""
    line = JsonFormatter().format(_record("bytes %s", "a\udcffb", big=2**70))
    entry = orjson.loads(line)
    assert entry["message"] == "bytes a\\udcffb"
    assert entry["big"] == str(2**70)


def test_text_format_is_unchanged_by_default(root_logger: logging.Logger) -> None:
    """Without a format, lines look as they always did: time, level, logger: message."""
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    logging.getLogger("salas.chat").info("hello %s", "there")
    logging.getLogger("salas.chat").debug("hidden")
    (line,) = _lines(stream)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO salas.chat: hello there", line)
    assert TEXT_FORMAT == "%(asctime)s %(levelname)s %(name)s: %(message)s"


def test_configure_json(root_logger: logging.Logger) -> None:
    """configure_logging("...", "json") writes one JSON object per record and line."""
    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream)
    log = logging.getLogger("salas.chat")
    log.debug("one")
    log.warning("two\nlines", extra={"room": "r"})
    entries = [orjson.loads(line) for line in _lines(stream)]
    assert [(e["level"], e["message"]) for e in entries] == [
        ("DEBUG", "one"),
        ("WARNING", "two\nlines"),
    ]
    assert entries[1]["room"] == "r"


def test_configure_refuses_unknown_format(root_logger: logging.Logger) -> None:
    """An unknown format is an error, not a silent fallback."""
    with pytest.raises(ValueError, match="xml"):
        configure_logging("info", "xml")

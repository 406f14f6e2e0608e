"""Log lines for people (`text`, the default) or for log pipelines (`json`).

The `json` format writes one JSON object per line: ``ts`` (ISO 8601, UTC, milliseconds),
``level``, ``logger``, ``message``, ``exc_info`` (the traceback text) and ``stack_info`` when
present, and every field a caller passed with ``extra=``. JSON escapes control characters, so
a hostile value in a message (a newline, an ANSI escape) cannot forge or garble a line.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

import orjson

__all__ = ["LOG_FORMATS", "TEXT_FORMAT", "JsonFormatter", "configure_logging"]

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What every LogRecord carries (and what Formatter.format adds): anything else on a record
# came from `extra=` and belongs in the line.
_STANDARD = frozenset(logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_FIELDS = ("ts", "level", "logger", "message", "exc_info", "stack_info")


def _clean(value: str) -> str:
    """`value` without lone surrogates (which UTF-8 cannot carry), each shown as ``\\udcxx``."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module's docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object on one line."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            # Cached like logging.Formatter does: other handlers may format the record too.
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in _FIELDS and not key.startswith("_"):
                entry[key] = value
        try:
            return orjson.dumps(entry, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()
        except (TypeError, orjson.JSONEncodeError):
            # A value orjson refuses (a lone surrogate from undecodable input, an int wider
            # than 64 bits): the line is still written, with such values as text.
            safe = {
                key: _clean(value if isinstance(value, str) else repr(value))
                for key, value in entry.items()
            }
            return orjson.dumps(safe).decode()


def configure_logging(level: str, log_format: str = "text", stream: IO[str] | None = None) -> None:
    """Send the root logger's records at `level` and above to `stream` (stderr) in
    `log_format` (one of `LOG_FORMATS`): one handler, added to the root logger."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r} (use {', '.join(LOG_FORMATS)})")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())

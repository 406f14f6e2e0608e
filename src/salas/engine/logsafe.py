"""Client-supplied text made safe to log: control characters escaped, length bounded.

A request path or a namespace comes from the client; written to a log as it is, a newline in
it starts a line the client wrote ("... CRITICAL forged"), and an escape sequence can rewrite
a terminal. Every such string goes through `printable` before it reaches a log call.
"""

from __future__ import annotations

__all__ = ["printable"]

# C0 controls, DEL and the C1 controls (U+0080-U+009F, which some terminals obey too).
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES |= {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}
# Line and paragraph separators break lines in some log viewers.
_ESCAPES |= {0x2028: "\\u2028", 0x2029: "\\u2029"}


def printable(text: object, limit: int = 200) -> str:
    """`text` (made a str) with control characters escaped, cut to `limit` characters.

    Args:
        text: What the client sent (a path, a namespace, an address...).
        limit: At most this many characters of `text` are kept; a longer one ends in "...".

    Returns:
        A string without control characters, safe on one log line.
    """
    raw = text if isinstance(text, str) else str(text)
    cut = raw[:limit]
    escaped = cut.translate(_ESCAPES) if not cut.isprintable() else cut
    return escaped + "..." if len(raw) > limit else escaped

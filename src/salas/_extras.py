"""The optional extras (``salas[postgres]``, ``salas[redis]``) and what to say when one is missing.

``import salas`` needs only the core dependencies; a backend with a heavy dependency imports
it where its URL is opened, and when it is not installed says which extra brings it.
"""

from __future__ import annotations

__all__ = ["extra_needed"]


def extra_needed(feature: str, extra: str) -> str:
    """The message for ``feature`` used without its extra installed, naming the pip command."""
    return f"{feature} needs the {extra!r} extra: pip install 'salas[{extra}]'"

"""Where the chat's web pages live inside the package."""

from pathlib import Path

__all__ = ["STATIC_DIR", "TUTORIAL_PAGE"]

STATIC_DIR = Path(__file__).parent / "static"
# The tutorial's own page (index.html + views/index.js), served at /tutorial/ by the chat
# and at / by examples/seed.py.
TUTORIAL_PAGE = STATIC_DIR / "tutorial"

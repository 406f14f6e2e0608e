"""MkDocs hooks (mkdocs.yml): pages take sections of README.md, which stays their one home.

A line ``<!-- readme: NAME -->`` in a page becomes README's section of that title (its body,
subsections included, without the heading line; ``intro`` is the title and text before the
first section). Links into docs/ are made relative to the site; a link to any other file of
the repository becomes plain text naming the file, since the site does not carry it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = re.compile(r"^<!-- readme: (?P<name>.+?) -->$", re.MULTILINE)
LINK = re.compile(r"(?P<bang>!?)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)\)")


def readme_section(text: str, name: str) -> str:
    """README's section titled `name` (``intro``: the title and text before any section)."""
    lines = text.splitlines()
    if name == "intro":
        end = next(i for i, line in enumerate(lines) if line.startswith("## "))
        return "\n".join(lines[:end]).strip() + "\n"
    heading = next(
        (i for i, line in enumerate(lines) if re.fullmatch(rf"(#+) {re.escape(name)}", line)),
        None,
    )
    if heading is None:
        raise ValueError(f"README.md has no section {name!r}")
    level = len(lines[heading]) - len(lines[heading].lstrip("#"))
    end = len(lines)
    for i in range(heading + 1, len(lines)):
        hashes = len(lines[i]) - len(lines[i].lstrip("#"))
        if 0 < hashes <= level and lines[i][hashes : hashes + 1] == " ":
            end = i
            break
    return "\n".join(lines[heading + 1 : end]).strip() + "\n"


def _relink(match: re.Match[str]) -> str:
    target = match["target"]
    if re.match(r"[a-z]+:|#", target):
        return match[0]
    if target.startswith("docs/"):
        return f"{match['bang']}[{match['text']}]({target.removeprefix('docs/')})"
    return f"{match['text']} (`{target}` in the repository)"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each readme marker of a page with that README section."""
    if not MARKER.search(markdown):
        return markdown
    text = README.read_text(encoding="utf-8")

    def section(match: re.Match[str]) -> str:
        return LINK.sub(_relink, readme_section(text, match["name"]))

    return MARKER.sub(section, markdown)

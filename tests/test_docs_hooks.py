"""scripts/docs_hooks.py: site pages take their text from README.md sections."""

from __future__ import annotations

import pytest
from scripts.docs_hooks import LINK, _relink, on_page_markdown, readme_section

TEXT = """# salas

Intro [guide](docs/security.md) ![shot](docs/screenshot.png).

## One

Body of one, see [seed](examples/seed.py), [web](https://example.com) and [here](#one).

### Sub

Sub body.

## Two

Body of two.
"""


def test_section_with_subsections_without_heading() -> None:
    """A section runs to the next heading of its level, subsections included."""
    assert readme_section(TEXT, "One") == (
        "Body of one, see [seed](examples/seed.py), [web](https://example.com) and "
        "[here](#one).\n\n### Sub\n\nSub body.\n"
    )
    assert readme_section(TEXT, "Two") == "Body of two.\n"


def test_intro_and_unknown_section() -> None:
    """`intro` is the title and text before the first section; an unknown name is an error."""
    assert readme_section(TEXT, "intro").startswith("# salas\n\nIntro ")
    with pytest.raises(ValueError, match="Three"):
        readme_section(TEXT, "Three")


def test_markers_are_replaced_from_the_readme() -> None:
    """The real README fills a marker; links into docs/ lose the prefix, links to other files
    of the repository become text, web links and anchors stay."""
    page = on_page_markdown("# Config\n\n<!-- readme: Configuration -->\n", None, None, None)
    assert "<!-- readme" not in page and "`SALAS_PORT`" in page
    assert "](docs/" not in page
    assert "[docs/security.md](security.md)" in page
    assert on_page_markdown("plain page\n", None, None, None) == "plain page\n"


def test_links_made_for_the_site() -> None:
    """docs/ links lose their prefix, images included; other files of the repository become
    text naming them; web links and anchors stay as they are."""
    assert LINK.sub(_relink, readme_section(TEXT, "intro")) == (
        "# salas\n\nIntro [guide](security.md) ![shot](screenshot.png).\n"
    )
    assert LINK.sub(_relink, readme_section(TEXT, "One")).startswith(
        "Body of one, see seed (`examples/seed.py` in the repository), "
        "[web](https://example.com) and [here](#one)."
    )

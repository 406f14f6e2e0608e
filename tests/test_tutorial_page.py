"""The tutorial's own page, unchanged but for its slips, works on both servers in Chromium.

Its page (src/salas/chat/static/tutorial/) is served at /tutorial/ by `salas serve` and at / by
examples/seed.py (the tutorial's server translated to salas). The page only has the tutorial's
controls: Room 1/2/3 buttons, "Send new message" (asks with `prompt`) and one box per room.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (  # noqa: F401  (fixtures are found by name)
    Chat,
    browser_fixture,
    check_inline_script_is_blocked,
    new_context_fixture,
    record_csp_violations,
    record_dialogs,
)
from tests.support.processes import ServerProcess, salas_serve, seed_example

with contextlib.suppress(ImportError):  # without it the browser fixture skips (CI: fails)
    from playwright.sync_api import expect


# The browser first: without Chromium every test skips (CI: fails) before starting a server.
pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("browser")]


@pytest.fixture(params=["salas serve", "examples/seed.py"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(name, URL of the tutorial's page) on the chat server and on the seed example."""
    if request.param == "salas serve":
        process: ServerProcess = salas_serve(tmp_path).start()
        url = process.url + "tutorial/"
    else:
        process = seed_example(tmp_path).start()
        url = process.url
    yield request.param, url
    process.stop()


class Tutorial:
    """One browser on the tutorial's page."""

    def __init__(self, new_context: Any, url: str):
        self.page = new_context().new_page()
        self.answers: list[str] = []
        self.dialogs = record_dialogs(self.page, self.answers)
        self.page.goto(url)
        expect(self.page.locator("h1")).to_have_text("Socket io")

    def join(self, room: str) -> None:
        self.page.click(f"#{room}")

    def send_with_prompt(self, text: str) -> None:
        """Click "Send new message" and type `text` into the prompt, as in the tutorial."""
        self.answers.append(text)
        self.page.click("#message")


def test_tutorial_page_two_pages_in_room1_and_one_in_room2(
    server: tuple[str, str], new_context: Any
) -> None:
    """Two pages join room1; one sends via prompt, the other shows it in .room1; room2 does not."""
    _, url = server
    alice, bob, carol = (Tutorial(new_context, url) for _ in range(3))
    alice.join("room1")
    bob.join("room1")
    carol.join("room2")

    # Each page's own message coming back into its box shows it is in the room.
    bob.send_with_prompt("bob is here")
    expect(bob.page.locator(".room1")).to_contain_text("bob is here")
    carol.send_with_prompt("carol is here")
    expect(carol.page.locator(".room2")).to_contain_text("carol is here")

    alice.send_with_prompt("hola desde room1")
    expect(bob.page.locator(".room1 p", has_text="hola desde room1")).to_have_count(1)
    expect(alice.page.locator(".room1 p", has_text="hola desde room1")).to_have_count(1)
    assert [d.type for d in alice.dialogs] == ["prompt"]
    assert alice.dialogs[0].message == "Send your message: "

    # Carol's next message comes back after anything sent to her before it.
    carol.send_with_prompt("still only room2")
    expect(carol.page.locator(".room2")).to_contain_text("still only room2")
    expect(carol.page.locator("body")).not_to_contain_text("hola desde room1")
    expect(carol.page.locator("body")).not_to_contain_text("bob is here")
    for person in (alice, bob):
        expect(person.page.locator("body")).not_to_contain_text("carol is here")
    expect(bob.page.locator(".room2 p, .room3 p")).to_have_text(["Room 2", "Room 3"])  # titles only


def test_tutorial_page_runs_under_its_content_security_policy(
    server: tuple[str, str], new_context: Any
) -> None:
    """The tutorial's page is served with a CSP on both servers and works under it: no
    violation while joining and exchanging messages; an injected inline script is blocked."""
    _, url = server
    context = new_context()
    violations = record_csp_violations(context)
    alice = Tutorial(lambda: context, url)
    bob = Tutorial(new_context, url)
    alice.join("room1")
    bob.join("room1")
    bob.send_with_prompt("under the policy")
    expect(bob.page.locator(".room1")).to_contain_text("under the policy")
    expect(alice.page.locator(".room1")).to_contain_text("under the policy")
    assert violations == []
    check_inline_script_is_blocked(alice.page, violations)


def test_tutorial_page_and_chat_page_share_rooms(tmp_path: Path, new_context: Any) -> None:
    """On `salas serve` a tutorial page and the chat page in room1 read each other's messages."""
    process = salas_serve(tmp_path).start()
    try:
        tutorial = Tutorial(new_context, process.url + "tutorial/")
        chat = Chat(new_context(), process.url, "maria")
        chat.join("room1")
        tutorial.join("room1")
        expect(chat.box("room1").locator(".member-list li")).to_have_count(2)
        tutorial.send_with_prompt("desde el tutorial")
        expect(chat.message("room1", "desde el tutorial")).to_have_count(1)
        chat.say("room1", "desde la página de chat")
        expect(tutorial.page.locator(".room1")).to_contain_text("desde la página de chat")
    finally:
        process.stop()

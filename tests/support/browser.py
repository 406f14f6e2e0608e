"""Helpers of the browser tests: Chromium through Playwright, and real servers as subprocesses.

Not a conftest.py on purpose: test modules import what they use, e.g.
``from tests.support.browser import browser_fixture  # noqa: F401``. The fixtures are registered
under the names ``browser`` and ``salas_server``; the Python names end in ``_fixture`` so that a
test's ``browser`` argument does not shadow an import.

Every test that asks for ``browser`` is skipped, with the reason, when /usr/bin/chromium or the
``playwright`` package is missing; with ``SALAS_REQUIRE_SERVICES=1`` (CI) it fails instead
(tests/support/services.py).
Playwright never downloads a browser here: Debian's Chromium is launched by path.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.support.processes import ServerProcess, salas_serve
from tests.support.services import unavailable

__all__ = [
    "Chat",
    "browser_fixture",
    "check_inline_script_is_blocked",
    "crowd",
    "css_string",
    "new_context_fixture",
    "post_messages",
    "record_csp_violations",
    "record_dialogs",
    "salas_server_fixture",
]

try:
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        Dialog,
        Locator,
        Page,
        expect,
        sync_playwright,
    )
except ImportError:  # pragma: no cover - reported by the browser fixture
    sync_playwright = None

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if sync_playwright is not None:
    # Waits end as soon as the page shows what is expected; the limit only matters on a
    # loaded machine (CI), where 5 s (Playwright's default) is sometimes short.
    expect.set_options(timeout=10_000)


# ------------------------------------------------------------------------------- servers
@pytest.fixture(scope="module", name="salas_server")
def salas_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One multi-room `salas serve` for a test module; tests use their own room names."""
    server = salas_serve(tmp_path_factory.mktemp("salas")).start()
    yield server
    server.stop()


# A crowd of python-socketio clients in a room, run in a subprocess (Playwright's sync API
# owns this thread's event loop). It prints "ready" once all have joined and leaves when its
# stdin closes.
_CROWD = """
import asyncio, sys, socketio

async def main(url, room, n):
    clients = [socketio.AsyncClient() for _ in range(n)]
    await asyncio.gather(*(
        c.connect(url, transports=["websocket"], auth={"name": f"crowd-{i:03d}"})
        for i, c in enumerate(clients)
    ))
    for c in clients:
        answer = await c.call("channel_join", room)
        assert answer["ok"], answer
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for c in clients:
        await c.disconnect()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


@contextmanager
def crowd(url: str, room: str, size: int) -> Iterator[None]:
    """`size` other people (crowd-000, ...) in `room` while the block runs."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _CROWD, url, room, str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_POSTER = """
import asyncio, sys, socketio

async def main(url, room, prefix, count):
    client = socketio.AsyncClient()
    await client.connect(url, transports=["websocket"], auth={"name": "poster"})
    answer = await client.call("channel_join", room)
    assert answer["ok"], answer
    for i in range(count):
        answer = await client.call("message", {"channel": room, "message": f"{prefix}{i:04d}"})
        assert answer["ok"], answer
    await client.disconnect()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


def post_messages(url: str, room: str, prefix: str, count: int) -> None:
    """Messages `prefix0000`, `prefix0001`, ... in `room` from "poster" (a python-socketio
    client in a subprocess); returns once all are stored."""
    subprocess.run(
        [sys.executable, "-c", _POSTER, url, room, prefix, str(count)], check=True, timeout=60
    )


# ------------------------------------------------------------------------------- browser
# Module scope, not session: while Playwright's sync API is running, asyncio sees a running
# event loop in this thread, which breaks every asyncio test after it (asyncio.run, pytest-asyncio).
# So it is stopped at the end of each module that uses it.
@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Browser]:
    """Debian's headless Chromium, launched once per test module."""
    if sync_playwright is None:
        unavailable("the playwright Python package is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} is missing: run scripts/setup.sh --test")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(name="new_context")
def new_context_fixture(browser: Browser) -> Iterator[Any]:
    """`new_context(**options)`: a browser context (own cookies and storage), closed after."""
    contexts: list[BrowserContext] = []

    def new_context(**options: Any) -> BrowserContext:
        options.setdefault("viewport", {"width": 1100, "height": 760})
        context = browser.new_context(**options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context

    yield new_context
    for context in contexts:
        context.close()


def record_csp_violations(context: BrowserContext) -> list[str]:
    """Every Content-Security-Policy violation reported in `context`'s pages from now on
    (the `securitypolicyviolation` event, and the console's CSP errors), as text."""
    found: list[str] = []
    context.expose_binding("__salasCspViolation", lambda source, text: found.append(text))
    context.add_init_script(
        "window.__salasCspCount = 0;"
        "document.addEventListener('securitypolicyviolation', e => {"
        "  window.__salasCspCount += 1;"
        "  window.__salasCspViolation(`${e.violatedDirective} blocked ${e.blockedURI}`);"
        "});"
    )

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            found.append(message.text)

    context.on("console", on_console)
    return found


def check_inline_script_is_blocked(page: Page, violations: list[str]) -> None:
    """Assert that `page` enforces a policy without inline scripts and that the violation
    reaches `violations` (from `record_csp_violations`): so a test that finds no violation
    shows that none happened, not that none could be seen."""
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.injected = 1";
          document.head.append(script);
        }"""
    )
    page.wait_for_function("() => window.__salasCspCount > 0")
    assert page.evaluate("() => window.injected") is None
    for _ in range(50):  # the report reaches Python asynchronously
        if any("script-src" in text for text in violations):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"no script-src violation reported: {violations}")


def record_dialogs(page: Page, answers: list[str] | None = None) -> list[Dialog]:
    """Keep every dialog the page opens. A prompt is answered with the next of `answers` (the
    test appends to the list before the click that prompts); any other dialog is dismissed."""
    seen: list[Dialog] = []

    def on_dialog(dialog: Dialog) -> None:
        seen.append(dialog)
        if dialog.type == "prompt" and answers:
            dialog.accept(answers.pop(0))
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


# ------------------------------------------------------------------------------- the chat page
class Chat:
    """One person on the chat page, in a browser context of their own."""

    def __init__(self, context: BrowserContext, url: str, name: str | None = None):
        self.page = context.new_page()
        self.dialogs = record_dialogs(self.page)
        self.requests: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.goto(url)
        expect(self.page.locator("#conn-state")).to_have_text("online")
        expect(self.page.locator("#nick")).not_to_have_value("")  # the name from `welcome`
        if name is not None:
            self.rename(name)

    @property
    def name(self) -> str:
        return self.page.locator("#nick").input_value()

    def rename(self, name: str) -> None:
        self.page.fill("#nick", name)
        self.page.press("#nick", "Enter")
        expect(self.page.locator("#nick")).to_have_value(name)
        # The server's answer is what sets the stored name (the field shows it either way).
        self.page.wait_for_function("name => localStorage.getItem('salas.name') === name", arg=name)

    def room_item(self, room: str) -> Locator:
        return self.page.locator(f'#room-list [data-room="{css_string(room)}"]')

    def box(self, room: str) -> Locator:
        return self.page.locator(f'#rooms-view .room[data-room="{css_string(room)}"]')

    def join(self, room: str) -> Locator:
        """Join with the room list's Join button (for listed rooms) or the join field."""
        item = self.room_item(room)
        if item.count() and item.locator(".join").is_visible():
            item.locator(".join").click()
        else:
            self.page.fill("#join-input", room)
            self.page.press("#join-input", "Enter")
        box = self.box(room)
        expect(box).to_be_visible()
        # Joined once the server's answer filled the member list.
        me = box.locator(".member-list li", has_text=re.compile(f"^{re.escape(self.name)}$"))
        expect(me).to_have_count(1)
        return box

    def show(self, room: str) -> Locator:
        self.room_item(room).locator(".room-name").click()
        expect(self.box(room)).to_be_visible()
        return self.box(room)

    def say(self, room: str, text: str) -> None:
        """Send `text` with Enter in the room's composer; wait until it is back from the room."""
        box = self.show(room)
        box.locator(".composer-input").fill(text)
        box.locator(".composer-input").press("Enter")
        expect(self.message(room, text)).to_have_count(1)
        expect(box.locator(".composer-input")).to_have_value("")

    def message(self, room: str, text: str) -> Locator:
        """The messages of `room` whose text is exactly `text`."""
        return (
            self.box(room)
            .locator(".log .msg")
            .filter(has=self.page.locator(".text", has_text=re.compile(f"^{re.escape(text)}$")))
        )


def css_string(value: str) -> str:
    """`value` inside a double-quoted CSS attribute selector."""
    return value.replace("\\", "\\\\").replace('"', '\\"')

"""The official Admin UI (npm @socket.io/admin-ui's built ui/dist) in Chromium, on `salas serve
--admin-ui`: it logs in, lists the sockets and their rooms, and its disconnect button works.

The dashboard is served from another origin (a static server on another port), listed in
--cors-origins, as https://admin.socket.io would be in a deployment.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import browser_fixture, new_context_fixture  # noqa: F401
from tests.support.processes import ROOT, ServerProcess, free_port, salas_serve
from tests.support.services import unavailable

with contextlib.suppress(ImportError):  # without it the browser fixture skips (CI: fails)
    from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("browser")]

UI_DIST = ROOT / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"
LOGIN = ("admin", "pa:ss")

# A chat user (python-socketio, in a subprocess: Playwright's sync API owns this thread's
# loop): joins "lobby", prints its socket id, then "disconnected" when the server drops it.
_USER = """
import asyncio, socketio

async def main(url):
    client = socketio.AsyncClient(reconnection=False)
    gone = asyncio.Event()
    client.on("disconnect", lambda *reason: gone.set())
    await client.connect(url, transports=["websocket"], auth={"name": "watched"})
    answer = await client.call("channel_join", "lobby")
    assert answer["ok"], answer
    print(client.get_sid("/"), flush=True)
    await asyncio.wait_for(gone.wait(), 60)
    print("disconnected", flush=True)

asyncio.run(main(__import__("sys").argv[1]))
"""


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(URL of the dashboard's page, URL of `salas serve --admin-ui`)."""
    if not (UI_DIST / "index.html").is_file():
        unavailable(f"{UI_DIST} is missing: run scripts/setup.sh (npm @socket.io/admin-ui)")
    ui_port = free_port()
    static = ["http.server", "--bind", "127.0.0.1", "--directory", str(UI_DIST), str(ui_port)]
    ui = ServerProcess(
        [sys.executable, "-m", *static],
        ui_port,
        tmp_path / "ui.log",
        "/index.html",
    ).start()
    ui_origin = f"http://127.0.0.1:{ui_port}"
    chat = salas_serve(tmp_path, "--cors-origins", ui_origin)
    chat.env["SALAS_ADMIN_UI"] = ":".join(LOGIN)
    chat.start()
    yield ui.url, chat.url.rstrip("/")
    chat.stop()
    ui.stop()


def log_in(page: Any, server_url: str, password: str) -> None:
    """Fill the dashboard's connection form and submit it."""
    page.get_by_label("Server URL").fill(server_url)
    page.get_by_label("Username").fill(LOGIN[0])
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Connect").click()


def test_dashboard_logs_in_lists_sockets_and_disconnects(
    new_context: Any, servers: tuple[str, str]
) -> None:
    """Wrong password refused; then the user's socket and room are listed, and disconnected."""
    ui_url, server_url = servers
    user = subprocess.Popen(
        [sys.executable, "-c", _USER, server_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert user.stdout is not None
        sid = user.stdout.readline().strip()
        assert sid, "the user did not connect"
        context = new_context()
        # Its fonts and icons come from CDNs, out of reach here: refused at once.
        context.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith("http://127.0.0.1")
                else route.abort()
            ),
        )
        page = context.new_page()
        page.goto(ui_url)
        log_in(page, server_url, "wrong")
        expect(page.get_by_text("Invalid credentials")).to_be_visible()
        log_in(page, server_url, LOGIN[1])
        expect(page.get_by_label("Server URL")).to_be_hidden()

        page.evaluate("location.hash = '#/sockets/'")
        row = page.locator("tr", has_text=sid)
        expect(row).to_be_visible()
        expect(row).to_contain_text("WebSocket")

        row.locator("td").first.click()  # the socket's own page, with its rooms
        expect(page.get_by_text("room:lobby")).to_be_visible()

        page.evaluate("location.hash = '#/rooms/'")
        # The rooms list: the chat's room, public (not a socket's own room).
        expect(page.get_by_role("row", name="room:lobby Public")).to_be_visible()

        page.evaluate("location.hash = '#/sockets/'")
        page.locator("tr", has_text=sid).locator("button").click()
        assert user.stdout.readline().strip() == "disconnected"
        # The click also opened the socket's page (a row click): back to the list, without it.
        page.evaluate("location.hash = '#/sockets/'")
        expect(page.locator("tr", has_text=sid)).to_have_count(0)
        assert user.wait(10) == 0
    finally:
        if user.poll() is None:
            user.kill()
            user.wait()

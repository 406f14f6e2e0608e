"""Regenerate docs/screenshot.png: the chat page with two people talking in a couple of rooms.

    .venv/bin/python docs/make_screenshot.py                 # starts `salas serve` itself
    .venv/bin/python docs/make_screenshot.py --url http://127.0.0.1:8000/   # a running server
    .venv/bin/python docs/make_screenshot.py --phone /tmp/phone.png         # also 375 px wide

Needs Chromium at /usr/bin/chromium (scripts/setup.sh --test installs it) and the `playwright`
Python package; Playwright never downloads a browser here.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def salas_serve() -> Iterator[str]:
    """`salas serve` on a free port with a throwaway SQLite file; yields its URL."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "salas", "serve", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--db", f"sqlite:///{tmp}/screenshot.db"]
        proc = subprocess.Popen(cmd, cwd=ROOT)
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(url + "healthz", timeout=1):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("salas serve did not start") from None
                    time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


def open_user(browser: Browser, url: str, name: str, width: int, height: int) -> Page:
    """A page of its own (own storage), connected, named `name`."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(url)
    expect(page.locator("#conn-state")).to_have_text("online")
    page.fill("#nick", name)
    page.press("#nick", "Enter")
    expect(page.locator("#nick")).to_have_value(name)
    return page


def join(page: Page, room: str) -> None:
    listed = page.locator(f'#room-list [data-room="{room}"] .room-name')
    if listed.count():
        listed.click()
    else:
        page.fill("#join-input", room)
        page.press("#join-input", "Enter")
    expect(page.locator(f'.room[data-room="{room}"]')).to_be_visible()


def say(page: Page, room: str, text: str) -> None:
    box = page.locator(f'.room[data-room="{room}"]')
    box.locator(".composer-input").fill(text)
    box.locator(".composer-input").press("Enter")
    expect(box.locator(".log .msg .text").last).to_have_text(text)


def stage(browser: Browser, url: str, width: int, height: int) -> Page:
    """Alice and Bob talk in room1 and room2; returns Alice's page, room1 in view."""
    alice = open_user(browser, url, "alice", width, height)
    bob = open_user(browser, url, "bob", 1000, 700)
    carol = open_user(browser, url, "carol", 1000, 700)
    for room in ("room2", "room1"):
        join(alice, room)
        join(bob, room)
    join(carol, "design")
    join(carol, "room1")
    say(alice, "room1", "Morning! The new chat page is up on staging.")
    say(bob, "room1", "Nice, the room list shows who is where, and unread badges too.")
    say(carol, "room1", "Reloaded the tab and the whole conversation came back from history.")
    say(alice, "room1", "And markup stays text: <img src=x onerror=alert(1)>")
    say(bob, "room1", "Nothing ran. Let's take the deploy talk to room2.")
    say(alice, "room1", "Works at phone width as well: the rooms become a strip at the top.")
    join(bob, "room2")
    say(bob, "room2", "Deploy checklist is in the wiki.")
    say(bob, "room2", "Ping me when staging is green.")
    expect(alice.locator('#room-list [data-room="room2"] .unread')).to_have_text("2")
    expect(alice.locator('#room-list [data-room="design"] .count')).to_have_text("1")
    # Bob starts typing in room1: Alice sees it.
    join(bob, "room1")
    bob.locator('.room[data-room="room1"] .composer-input').type("sounds good", delay=20)
    expect(alice.locator('.room[data-room="room1"] .typing')).to_have_text("bob is typing…")
    alice.locator('.room[data-room="room1"] .composer-input').fill("On it — ")
    alice.locator("body").click(position={"x": 5, "y": 790})  # blur: no focus ring in shot
    return alice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running salas chat (default: start salas serve)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    parser.add_argument("--phone", help="also save a 375 px wide screenshot here")
    parser.add_argument("--dark", action="store_true", help="prefers-color-scheme: dark")
    args = parser.parse_args()
    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"{CHROMIUM} not found: run scripts/setup.sh --test")

    server = salas_serve() if args.url is None else _given(args.url)
    with server as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        alice = stage(browser, url, 1200, 800)
        if args.dark:
            alice.emulate_media(color_scheme="dark")
        alice.screenshot(path=args.out)
        print(f"wrote {args.out}")
        if args.phone:
            alice.set_viewport_size({"width": 375, "height": 740})
            alice.screenshot(path=args.phone)
            print(f"wrote {args.phone}")
        browser.close()


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url if url.endswith("/") else url + "/"


if __name__ == "__main__":
    main()

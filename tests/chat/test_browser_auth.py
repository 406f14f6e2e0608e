"""The chat page signed in (`salas serve --jwt-secret ... --private-rooms 'staff-*'`) in
Chromium: login by URL, private rooms, deleting, kicking and banning, an expired token, and
an accessibility audit (axe-core) of every state the page has.

Like tests/chat/test_browser.py: each person has a browser context of their own, the tests
wait on what the page shows, and user ids and room names are unique per test, so the tests
share one server.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from salas.auth import mint_token
from tests.support.browser import (  # noqa: F401  (fixtures are found by name)
    Chat,
    browser_fixture,
    new_context_fixture,
    record_csp_violations,
)
from tests.support.processes import ServerProcess, salas_serve
from tests.support.services import ROOT, unavailable

with contextlib.suppress(ImportError):  # without it the browser fixture skips (CI: fails)
    from playwright.sync_api import Page, expect

SECRET = "a test secret that is long enough for HS256 signing"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"

# The browser first: without Chromium every test skips (CI: fails) before starting a server.
pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("browser")]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def token(
    sub: str, name: str | None = None, *, rooms: tuple[str, ...] = (), role: str = "member"
) -> str:
    return mint_token(SECRET, sub, name, rooms=rooms, role=role, ttl=3600)


def expired_token(sub: str, name: str) -> str:
    """A token that expired an hour ago (mint_token only makes tokens valid from now)."""
    now = int(time.time())
    claims = {"sub": sub, "name": name, "iat": now - 7200, "exp": now - 3600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One `salas serve` with tokens on and `staff-*` rooms private, for the module."""
    flags = ("--jwt-secret", SECRET, "--private-rooms", "staff-*")
    server = salas_serve(tmp_path_factory.mktemp("salas-auth"), *flags).start()
    yield server
    server.stop()


class People:
    """Opens the page signed in as someone; records every CSP violation on the way."""

    def __init__(self, server: ServerProcess, new_context: Any) -> None:
        self.server = server
        self.new_context = new_context
        self.recorded: list[list[str]] = []

    @property
    def csp_violations(self) -> list[str]:
        """Every CSP violation in the contexts opened so far (but those that bypass it)."""
        return [text for found in self.recorded for text in found]

    def context(self, **options: Any) -> Any:
        context = self.new_context(**options)
        if not options.get("bypass_csp"):
            self.recorded.append(record_csp_violations(context))
        return context

    def open(
        self, name: str, *, rooms: tuple[str, ...] = (), role: str = "member", **options: Any
    ) -> Chat:
        """`name`'s page, signed in with a fresh token (user id: a unique one)."""
        sub = unique(name.lower())
        return Chat(self.context(**options), self.url(token(sub, name, rooms=rooms, role=role)))

    def url(self, jwt_token: str) -> str:
        return f"{self.server.url}#token={jwt_token}"


@pytest.fixture
def people(auth_server: ServerProcess, new_context: Any) -> Iterator[People]:
    """`people.open(name, rooms=..., role=...)`; fails the test on any CSP violation."""
    crowd = People(auth_server, new_context)
    yield crowd
    assert crowd.csp_violations == []


def member(box: Any, name: str) -> Any:
    """`name`'s entry in a room box's member list."""
    return box.locator(".member-list li").filter(
        has=box.page.locator(".member-name", has_text=re.compile(f"^{re.escape(name)}$"))
    )


def test_login_by_url_keeps_the_token_out_of_the_address(people: People) -> None:
    """`#token=` signs in: the name from the token is shown, the token leaves the address bar
    and stays for the tab (a reload is still signed in), and renaming is not offered."""
    alice = people.open("Alice Liddell")
    page = alice.page
    expect(page.locator("#whoami")).to_be_visible()
    expect(page.locator("#whoami-name")).to_have_text("Alice Liddell")
    assert "token" not in page.url
    assert page.url == people.server.url
    assert page.evaluate("() => sessionStorage.getItem('salas.token')")
    expect(page.locator("#nick-form")).to_be_hidden()
    expect(page.locator("#auth-panel")).to_be_hidden()
    room = unique("lobby")
    alice.join(room)
    page.reload()
    expect(page.locator("#conn-state")).to_have_text("online")
    expect(page.locator("#whoami-name")).to_have_text("Alice Liddell")
    expect(member(alice.box(room), "Alice Liddell")).to_have_count(1)


def test_private_rooms_absent_unless_allowed_and_refused_by_name(people: People) -> None:
    """A private room shows with a lock to someone allowed in; it is absent from the list of
    someone who is not, and joining it by name shows "private" in its box, with no composer."""
    staff, public = unique("staff"), unique("public")
    carol = people.open("Carol", rooms=("staff-*",))
    bob = people.open("Bob")
    carol.join(public)
    carol.join(staff)  # (joined last: its box is the one shown)
    item = carol.room_item(staff)
    expect(item.locator(".lock")).to_be_visible()
    expect(item.locator(".lock")).to_have_text("private")
    expect(carol.box(staff).locator(".room-lock")).to_be_visible()
    expect(carol.room_item(public).locator(".lock")).to_be_hidden()

    # The room list reaches bob with the public room (carol is in it), without the private one.
    expect(bob.room_item(public).locator(".count")).to_have_text("1")
    expect(bob.room_item(staff)).to_have_count(0)

    bob.page.fill("#join-input", staff)
    bob.page.press("#join-input", "Enter")
    box = bob.box(staff)
    expect(box.locator(".room-notice")).to_be_visible()
    expect(box.locator(".room-notice")).to_contain_text("private room")
    expect(box.locator(".composer")).to_be_hidden()
    expect(box.locator(".rejoin")).to_be_hidden()
    expect(bob.room_item(staff)).to_have_count(0)
    expect(member(carol.box(staff), "Bob")).to_have_count(0)
    box.locator(".leave").click()  # "Close"
    expect(bob.box(staff)).to_have_count(0)


def test_deleting_my_message_removes_it_for_everyone(people: People) -> None:
    """Delete shows on my own messages only; deleting one removes it from every member's box,
    and it does not come back with the history."""
    room = unique("delete")
    alice, bob = people.open("Alice"), people.open("Bob")
    alice.join(room)
    bob.join(room)
    mine, theirs = unique("regret this"), unique("bob's own")
    alice.say(room, mine)
    bob.say(room, theirs)
    expect(alice.message(room, mine).locator(".delete")).to_have_count(1)
    expect(alice.message(room, theirs).locator(".delete")).to_have_count(0)
    expect(bob.message(room, mine)).to_have_count(1)
    expect(bob.message(room, mine).locator(".delete")).to_have_count(0)

    delete = alice.message(room, mine).locator(".delete")
    expect(delete).to_have_attribute("aria-label", re.compile("^Delete message by Alice"))
    delete.focus()
    alice.page.keyboard.press("Enter")  # by keyboard
    expect(alice.message(room, mine)).to_have_count(0)
    expect(bob.message(room, mine)).to_have_count(0)
    expect(bob.box(room).locator(".log .deleted")).to_have_text(["message deleted"])
    expect(bob.message(room, theirs)).to_have_count(1)

    bob.page.reload()
    expect(bob.page.locator("#conn-state")).to_have_text("online")
    expect(bob.message(room, theirs)).to_have_count(1)
    expect(bob.message(room, mine)).to_have_count(0)


def test_moderator_kicks_and_bans_a_member(people: People) -> None:
    """A moderator sees Kick and Ban beside every member but themselves; a member sees none.
    Kicked, the member's box says who removed them and leaves the room; they may join again.
    Banned, they are told until when, and joining again is refused."""
    room = unique("moderated")
    mod, bob = people.open("Moe", role="moderator"), people.open("Bob")
    mod.join(room)
    bob.join(room)
    mod_box, bob_box = mod.box(room), bob.box(room)
    expect(member(mod_box, "Bob").locator("button.kick")).to_have_attribute(
        "aria-label", "Kick Bob"
    )
    expect(member(mod_box, "Bob").locator("button.ban")).to_be_visible()
    expect(member(mod_box, "Moe").locator("button")).to_have_count(0)
    expect(bob_box.locator(".member-list button")).to_have_count(0)
    expect(bob_box.locator(".ban-length")).to_be_hidden()
    expect(mod.page.locator("#whoami-role")).to_have_text("moderator")

    member(mod_box, "Bob").locator("button.kick").click()
    expect(bob_box.locator(".room-notice")).to_have_text(
        re.compile(f"You were removed from {re.escape(room)} by Moe")
    )
    expect(bob_box.locator(".composer")).to_be_hidden()
    expect(bob_box.locator(".member-list li")).to_have_count(0)
    expect(member(mod_box, "Bob")).to_have_count(0)
    expect(mod_box.locator(".log .sys").last).to_have_text("Bob was removed by Moe")

    bob_box.locator(".rejoin").click()
    expect(bob_box.locator(".room-notice")).to_be_hidden()
    expect(member(mod_box, "Bob")).to_have_count(1)
    back = unique("back again")
    bob.say(room, back)
    expect(mod.message(room, back)).to_have_count(1)

    mod_box.locator(".ban-seconds").select_option(label="1 hour")
    member(mod_box, "Bob").locator("button.ban").click()
    expect(bob_box.locator(".room-notice")).to_contain_text(
        f"You were banned from {room} by Moe until"
    )
    expect(mod_box.locator(".log .sys").last).to_have_text("Bob was banned by Moe")
    bob_box.locator(".rejoin").click()
    expect(bob_box.locator(".room-notice")).to_contain_text(f"You are banned from {room}")
    expect(member(mod_box, "Bob")).to_have_count(0)


def test_expired_token_asks_for_a_new_one_and_reconnects_with_it(
    people: People, auth_server: ServerProcess
) -> None:
    """An expired token: the page says so and offers a labelled field for a new token; a bad
    one pasted is refused with its own message; a fresh one (or the link with it) signs in."""
    sub = unique("dora")
    page: Page = people.context().new_page()
    page.goto(people.url(expired_token(sub, "Dora")))
    panel = page.locator("#auth-panel")
    expect(panel).to_be_visible()
    expect(page.locator("#auth-message")).to_contain_text("expired")
    expect(page.locator("#conn-state")).to_have_text("offline")
    expect(page.locator("#reconnect")).to_be_hidden()
    expect(page.get_by_label("Sign-in token (or the link with it)")).to_be_focused()
    assert "token" not in page.url

    page.get_by_label("Sign-in token (or the link with it)").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#auth-message")).to_contain_text("not accepted")

    # The link `salas token` prints works too; Enter submits.
    page.get_by_label("Sign-in token (or the link with it)").fill(people.url(token(sub, "Dora")))
    page.keyboard.press("Enter")
    expect(page.locator("#conn-state")).to_have_text("online")
    expect(panel).to_be_hidden()
    expect(page.locator("#whoami-name")).to_have_text("Dora")
    page.reload()
    expect(page.locator("#whoami-name")).to_have_text("Dora")


def test_without_a_token_the_page_asks_for_one(people: People) -> None:
    """No token at all on a server that wants one: the sign-in form, saying a token is needed."""
    page = people.context().new_page()
    page.goto(people.server.url)
    expect(page.locator("#auth-panel")).to_be_visible()
    expect(page.locator("#auth-message")).to_contain_text("needs you to sign in")
    expect(page.locator("#nick")).to_have_value("")


@pytest.mark.slow
def test_session_dropped_at_expiry_shows_the_sign_in_form(people: People) -> None:
    """A connected page whose token expires (the server ends the session at exp and its
    leeway) shows the sign-in form saying so."""
    sub = unique("eve")
    short = mint_token(SECRET, sub, "Eve", ttl=1)
    page = people.context().new_page()
    page.goto(people.url(short))
    expect(page.locator("#whoami-name")).to_have_text("Eve")  # accepted (within the leeway)
    expect(page.locator("#auth-panel")).to_be_visible(timeout=60_000)
    expect(page.locator("#auth-message")).to_contain_text("expired")
    page.get_by_label("Sign-in token (or the link with it)").fill(token(sub, "Eve"))
    page.keyboard.press("Enter")
    expect(page.locator("#conn-state")).to_have_text("online")
    expect(page.locator("#auth-panel")).to_be_hidden()


# ------------------------------------------------------------------------------- axe-core
def axe_violations(page: Page, state: str) -> list[str]:
    """The serious and critical axe-core violations of `page` as it is now, named by `state`."""
    if not AXE.is_file():
        unavailable("npm's axe-core is not installed (scripts/setup.sh --test)")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
            const result = await axe.run(document, { resultTypes: ["violations"] });
            return result.violations.map((v) => ({
                id: v.id, impact: v.impact,
                nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
            }));
        }"""
    )
    return [
        f"{state}: {v['id']} ({v['impact']}) at {v['nodes']}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def test_every_state_of_the_page_passes_an_axe_audit(
    people: People, auth_server: ServerProcess, tmp_path: Path
) -> None:
    """axe-core finds no serious or critical violation in any state: anonymous, a room with
    messages, a pending send, signed in, moderating, kicked, refused, the sign-in form.
    (The audit's script is injected, so these contexts bypass the page's CSP.)"""
    found: list[str] = []
    room = unique("audit")

    anonymous_server = salas_serve(tmp_path).start()
    try:
        guest = Chat(people.context(bypass_csp=True), anonymous_server.url)
        found += axe_violations(guest.page, "anonymous")
        other = Chat(people.context(bypass_csp=True), anonymous_server.url)
        guest.join(room)
        other.join(room)
        guest.say(room, unique("hello"))
        other.say(room, unique("hi there"))
        expect(guest.box(room).locator(".log .msg")).to_have_count(2)
        found += axe_violations(guest.page, "anonymous, room with messages")
        anonymous_server.stop()
        expect(guest.page.locator("#conn-state")).to_have_text("reconnecting…")
        composer = guest.box(room).locator(".composer-input")
        composer.fill(unique("waiting"))
        composer.press("Enter")
        expect(guest.box(room).locator(".msg.pending .status")).to_have_text("sending…")
        found += axe_violations(guest.page, "pending send")
    finally:
        anonymous_server.stop()

    mod = people.open("Moe", role="moderator", rooms=("staff-*",), bypass_csp=True)
    bob = people.open("Bob", bypass_csp=True)
    for person in (mod, bob):
        person.join(room)
    mod.join(unique("staff"))
    mod.show(room)
    bob.say(room, unique("from bob"))
    mod.say(room, unique("from moe"))
    expect(member(mod.box(room), "Bob").locator("button.kick")).to_be_visible()
    found += axe_violations(bob.page, "signed in, room with messages")
    found += axe_violations(mod.page, "moderator with member list")

    member(mod.box(room), "Bob").locator("button.kick").click()
    expect(bob.box(room).locator(".room-notice")).to_be_visible()
    found += axe_violations(bob.page, "kicked")

    bob.page.fill("#join-input", unique("staff"))
    bob.page.press("#join-input", "Enter")
    expect(bob.page.locator(".room:not([hidden]) .room-notice")).to_contain_text("private room")
    found += axe_violations(bob.page, "private room refused")

    page = people.context(bypass_csp=True).new_page()
    page.goto(people.url(expired_token(unique("eve"), "Eve")))
    expect(page.locator("#auth-panel")).to_be_visible()
    found += axe_violations(page, "sign-in form")

    assert found == [], "\n".join(found)

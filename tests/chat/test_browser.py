"""The chat's web page (src/salas/chat/static/) in Chromium, against a real `salas serve`.

Each test opens two or three browser contexts (separate people: own storage, own connection)
and waits on what the page shows, never on sleeps. Room names and texts are unique per test,
so the tests can share one server.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (  # noqa: F401  (fixtures are found by name)
    Chat,
    browser_fixture,
    check_inline_script_is_blocked,
    crowd,
    new_context_fixture,
    post_messages,
    record_csp_violations,
    salas_server_fixture,
)
from tests.support.processes import ServerProcess, salas_serve

with contextlib.suppress(ImportError):  # without it the browser fixture skips (CI: fails)
    from playwright.sync_api import expect

XSS = "<img src=x onerror=alert(1)>"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# The browser first: without Chromium every test skips (CI: fails) before starting a server.
pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("browser")]


@pytest.fixture
def chat(salas_server: ServerProcess, new_context: Any) -> Any:
    """`chat(name)`: a person on the shared server's page, in a browser context of their own."""

    def open_chat(name: str | None = None, **context_options: Any) -> Chat:
        return Chat(new_context(**context_options), salas_server.url, name)

    return open_chat


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Any]:
    """`own_server(*flags)`: a `salas serve` of the test's own, stopped after it."""
    servers: list[ServerProcess] = []

    def start(*flags: str) -> ServerProcess:
        server = salas_serve(tmp_path, *flags).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_join_send_and_receive_in_the_right_box(chat: Any, salas_server: ServerProcess) -> None:
    """Messages land in their room's box, with author and time; nothing loads from elsewhere."""
    alice, bob = chat("alice-" + uuid.uuid4().hex[:4]), chat("bob-" + uuid.uuid4().hex[:4])
    for person in (alice, bob):
        for room in ("room1", "room2"):
            box = person.join(room)
            # The tutorial's selector still finds the box: <div class="room room1">.
            expect(person.page.locator(f"div.room.{room}")).to_have_attribute("data-room", room)
            expect(box).to_be_visible()
    hello, other = unique("hello room1"), unique("over in room2")
    alice.say("room1", hello)
    bob.say("room2", other)

    got = bob.message("room1", hello)
    expect(got).to_have_count(1)
    expect(got.locator(".author")).to_have_text(alice.name)
    expect(got.locator("time")).to_have_text(re.compile(r"\d{1,2}:\d{2}"))
    expect(bob.message("room2", hello)).to_have_count(0)
    expect(alice.message("room2", other)).to_have_count(1)
    expect(alice.message("room1", other)).to_have_count(0)
    expect(alice.message("room2", other).locator(".author")).to_have_text(bob.name)

    for person in (alice, bob):
        foreign = [u for u in person.requests if not u.startswith(salas_server.url)]
        assert foreign == [], f"requests outside the server: {foreign}"


def test_chat_page_runs_under_its_content_security_policy(
    chat: Any, salas_server: ServerProcess, new_context: Any
) -> None:
    """The chat page works under its Content-Security-Policy: connecting, joining, sending,
    receiving and reloading report no violation, while an injected inline script is blocked."""
    context = new_context()
    violations = record_csp_violations(context)
    alice = Chat(context, salas_server.url)
    bob = chat()
    room, text = unique("csp"), unique("under the policy")
    alice.join(room)
    bob.join(room)
    bob.say(room, text)
    expect(alice.message(room, text)).to_have_count(1)
    alice.page.reload()
    expect(alice.page.locator("#conn-state")).to_have_text("online")
    expect(alice.message(room, text)).to_have_count(1)  # the history, loaded again
    assert violations == []
    check_inline_script_is_blocked(alice.page, violations)


def test_a_client_not_in_the_room_receives_nothing_from_it(chat: Any) -> None:
    """Someone who joined only another room gets no box and no text from a room they are not in."""
    room, elsewhere = unique("quiet"), unique("elsewhere")
    alice, bob, carol = chat(), chat(), chat()
    alice.join(room)
    bob.join(room)
    carol.join(elsewhere)
    alice.join(elsewhere)
    secret = unique("only for the room")
    alice.say(room, secret)
    expect(bob.message(room, secret)).to_have_count(1)
    # One connection's packets arrive in order: once carol has the later message, the
    # earlier one would be there too if it had been sent to her.
    later = unique("after the secret")
    alice.say(elsewhere, later)
    expect(carol.message(elsewhere, later)).to_have_count(1)
    expect(carol.box(room)).to_have_count(0)
    expect(carol.page.locator("body")).not_to_contain_text(secret)


def test_single_room_mode_leaves_the_old_room(own_server: Any, new_context: Any) -> None:
    """--single-room: the page says so; joining room2 closes room1's box and its messages stop."""
    server = own_server("--single-room")
    alice, bob = Chat(new_context(), server.url), Chat(new_context(), server.url)
    expect(alice.page.locator("#mode")).to_be_visible()
    expect(alice.page.locator("#mode")).to_have_text(re.compile("single-room"))
    alice.join("room1")
    bob.join("room1")
    expect(bob.box("room1").locator(".member-list li")).to_have_count(2)

    alice.join("room2")
    expect(alice.box("room1")).to_have_count(0)
    expect(alice.page.locator("#rooms-view .room")).to_have_count(1)
    expect(alice.room_item("room1").locator(".join")).to_be_visible()
    # Bob sees her go.
    expect(bob.box("room1").locator(".member-list li")).to_have_count(1)
    missed = unique("after she left")
    bob.say("room1", missed)
    bob.join("room2")  # single-room: bob leaves room1 too, and is now with alice
    after = unique("in room2")
    bob.say("room2", after)
    expect(alice.message("room2", after)).to_have_count(1)
    expect(alice.page.locator("body")).not_to_contain_text(missed)


def test_history_appears_after_reload(chat: Any) -> None:
    """A reload reopens the room with its stored messages in order; a newcomer gets them too."""
    room = unique("history")
    alice = chat()
    alice.join(room)
    first, second = unique("first"), unique("second")
    alice.say(room, first)
    alice.say(room, second)

    alice.page.reload()
    expect(alice.page.locator("#conn-state")).to_have_text("online")
    texts = alice.box(room).locator(".log .msg .text")
    expect(texts).to_have_text([first, second])
    expect(alice.box(room).locator(".log .msg .author")).to_have_text([alice.name] * 2)

    bob = chat()
    bob.join(room)
    expect(bob.box(room).locator(".log .msg .text")).to_have_text([first, second])


def test_markup_in_a_message_is_shown_as_text_and_runs_nothing(chat: Any) -> None:
    """`<img src=x onerror=alert(1)>` as message or name shows as text; nothing runs."""
    room = unique("xss")
    alice, bob = chat(), chat()
    alice.join(room)
    bob.join(room)
    alice.say(room, XSS)
    got = bob.message(room, XSS)
    expect(got).to_have_count(1)
    expect(got.locator(".text")).to_have_text(XSS)
    # A name with markup travels the same way; a later round trip lets any handler fire first.
    bob.rename("<b>bob</b>")
    bob.say(room, "after the markup")
    expect(alice.message(room, "after the markup").locator(".author")).to_have_text("<b>bob</b>")
    for person in (alice, bob):
        expect(person.page.locator("#rooms-view img, #rooms-view b")).to_have_count(0)
        assert person.dialogs == [], [d.message for d in person.dialogs]


def test_typing_and_presence_appear_and_clear(chat: Any) -> None:
    """Typing shows while Bob types and clears; members and count follow joins and leaves."""
    room = unique("presence")
    alice, bob = chat("alice"), chat("bob")
    alice.join(room)
    bob.join(room)
    box = alice.box(room)
    expect(box.locator(".member-list li")).to_have_text(["alice", "bob"])
    expect(box.locator(".room-count")).to_have_text("2 online")

    composer = bob.box(room).locator(".composer-input")
    composer.press_sequentially("hel", delay=30)
    expect(box.locator(".typing")).to_have_text("bob is typing…")
    composer.fill("")  # cleared: the page says "stopped" right away
    composer.dispatch_event("input")
    expect(box.locator(".typing")).to_have_text("")
    composer.press_sequentially("hello", delay=30)
    expect(box.locator(".typing")).to_have_text("bob is typing…")
    composer.press("Enter")
    expect(alice.message(room, "hello")).to_have_count(1)
    expect(box.locator(".typing")).to_have_text("")
    expect(bob.box(room).locator(".typing")).to_have_text("")  # nobody sees themselves

    carol = chat("carol")
    carol.join(room)
    expect(box.locator(".member-list li")).to_have_text(["alice", "bob", "carol"])
    expect(box.locator(".room-count")).to_have_text("3 online")
    expect(box.locator(".log .sys").last).to_have_text("carol joined")
    carol.box(room).locator(".leave").click()
    expect(carol.box(room)).to_have_count(0)
    expect(box.locator(".member-list li")).to_have_text(["alice", "bob"])
    expect(box.locator(".room-count")).to_have_text("2 online")
    expect(box.locator(".log .sys").last).to_have_text("carol left")
    bob.page.close()  # closing the tab is leaving too
    expect(box.locator(".member-list li")).to_have_text(["alice"])


def test_member_list_of_a_room_over_100_members(chat: Any, salas_server: ServerProcess) -> None:
    """Over 100 members presence has no list: the page applies joins, renames and leaves itself."""
    room = unique("crowded")
    with crowd(salas_server.url, room, 100):
        alice, bob = chat("alice"), chat("bob")
        alice.join(room)
        members = alice.box(room).locator(".member-list li")
        expect(members).to_have_count(101)  # the join ack always has the list
        expect(alice.box(room).locator(".room-count")).to_have_text("101 online")
        bob.join(room)
        expect(members).to_have_count(102)
        expect(alice.box(room).locator(".room-count")).to_have_text("102 online")
        expect(alice.room_item(room).locator(".count")).to_have_text("102")
        bob.rename("bobby")
        expect(members.filter(has_text=re.compile("^bobby$"))).to_have_count(1)
        expect(members.filter(has_text=re.compile("^bob$"))).to_have_count(0)
        bob.box(room).locator(".leave").click()
        expect(members).to_have_count(101)
        expect(members.filter(has_text="bob")).to_have_count(0)
        expect(alice.box(room).locator(".room-count")).to_have_text("101 online")


def test_load_earlier_messages_and_the_log_cap(own_server: Any, new_context: Any) -> None:
    """Join shows the latest 50, "Load earlier messages" pages back; past 1000 lines old ones go."""
    server = own_server("--message-rate", "0")
    room = "paging"
    post_messages(server.url, room, "old-", 60)
    alice = Chat(new_context(), server.url)
    box = alice.join(room)
    texts = box.locator(".log .msg .text")
    expect(texts).to_have_count(50)
    expect(texts.first).to_have_text("old-0010")
    box.locator(".older").click()
    expect(texts).to_have_count(60)
    expect(texts.first).to_have_text("old-0000")
    expect(box.locator(".older")).to_be_hidden()

    # Lines are only dropped while the reader is at the end (nothing moves under their eyes).
    box.locator(".log-wrap").evaluate("log => { log.scrollTop = log.scrollHeight; }")
    post_messages(server.url, room, "new-", 1000)
    expect(texts.last).to_have_text("new-0999")
    expect(box.locator(".log > li")).to_have_count(1000)
    expect(box.locator(".older")).to_be_visible()
    first = texts.first.text_content()
    box.locator(".older").click()
    expect(texts.first).not_to_have_text(first or "")
    expect(texts.last).to_have_text("new-0999")


def test_unread_badge_for_a_room_not_in_view(chat: Any) -> None:
    """Messages to a room not in view count on its badge and title; opening it clears both."""
    busy, shown = unique("busy"), unique("shown")
    alice, bob = chat(), chat()
    bob.join(busy)
    alice.join(busy)
    alice.join(shown)  # the room joined last is the one in view
    badge = alice.room_item(busy).locator(".unread")
    expect(badge).to_be_hidden()
    bob.say(busy, unique("one"))
    bob.say(busy, unique("two"))
    expect(badge).to_have_text("2")
    expect(badge).to_be_visible()
    expect(alice.page).to_have_title("(2) salas")
    expect(alice.room_item(shown).locator(".unread")).to_be_hidden()

    alice.show(busy)
    expect(badge).to_be_hidden()
    expect(alice.page).to_have_title("salas")
    expect(alice.box(busy).locator(".log .msg")).to_have_count(2)
    bob.say(busy, unique("three"))  # now in view: no badge
    expect(alice.box(busy).locator(".log .msg")).to_have_count(3)
    expect(badge).to_be_hidden()


def test_connection_state_online_then_reconnecting_then_back(
    own_server: Any, new_context: Any
) -> None:
    """online → reconnecting… (server down) → online, room rejoined, nothing doubled."""
    server = own_server()
    alice, bob = Chat(new_context(), server.url), Chat(new_context(), server.url)
    state = alice.page.locator("#conn-state")
    expect(state).to_have_text("online")
    expect(state).to_have_attribute("data-state", "online")
    alice.join("room1")
    bob.join("room1")
    before = unique("before the restart")
    alice.say("room1", before)

    server.stop()
    expect(state).to_have_text("reconnecting…")
    expect(state).to_have_attribute("data-state", "reconnecting")
    server.start()  # same port, same SQLite file
    expect(state).to_have_text("online", timeout=15_000)
    expect(bob.page.locator("#conn-state")).to_have_text("online", timeout=15_000)
    # Both rejoined room1 by themselves: a message goes through, and history is not doubled.
    expect(bob.box("room1").locator(".member-list li")).to_have_count(2)
    after = unique("after the restart")
    alice.say("room1", after)
    expect(bob.message("room1", after)).to_have_count(1)
    expect(bob.message("room1", before)).to_have_count(1)
    expect(alice.message("room1", before)).to_have_count(1)


def test_name_from_welcome_rename_and_errors_shown(chat: Any) -> None:
    """The name comes from `welcome`; a taken name or bad room shows the error, changes nothing."""
    room = unique("names")
    alice, bob = chat(), chat()
    expect(alice.page.locator("#nick")).to_have_value(re.compile(r"^guest-"))
    taken = unique("alice")
    alice.rename(taken)
    alice.join(room)
    bob.join(room)
    expect(bob.box(room).locator(".member-list li", has_text=taken)).to_have_count(1)

    before = bob.name
    bob.page.fill("#nick", taken)
    bob.page.press("#nick", "Enter")
    error = bob.page.locator("#errors .error-item")
    expect(error).to_have_count(1)
    expect(error).to_have_attribute("data-code", "name_taken")
    expect(bob.page.locator("#nick")).to_have_value(before)
    error.locator("button").click()
    expect(error).to_have_count(0)

    bob.page.fill("#join-input", "bell\u0007room")  # a control character: invalid_room
    bob.page.press("#join-input", "Enter")
    expect(error).to_have_attribute("data-code", "invalid_room")
    expect(error).to_be_visible()
    expect(bob.page.locator("#join-input")).to_have_value("bell\u0007room")  # kept, to fix
    expect(bob.page.locator("#rooms-view .room")).to_have_count(1)


def test_any_room_name_gets_a_box_found_by_data_room(chat: Any) -> None:
    """Room names that are no CSS class, or a class of the page, get a working box by data-room."""
    odd, clash = f'our "café" {uuid.uuid4().hex[:4]}', "log"
    alice, bob = chat(), chat()
    for person in (alice, bob):
        person.join(odd)
        person.join(clash)
    expect(alice.page.locator("#rooms-view div.room.log")).to_have_count(0)
    text = unique("odd room")
    alice.say(odd, text)
    expect(bob.message(odd, text)).to_have_count(1)
    expect(bob.room_item(odd).locator(".room-name")).to_have_text(odd)


def test_usable_at_phone_width(chat: Any) -> None:
    """At 375 px wide nothing overflows sideways; rooms, box and composer are on screen."""
    room = unique("phone")
    alice = chat(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    alice.join(room)
    alice.say(room, " ".join(["a fairly long line of text that must wrap inside the box"] * 3))
    page = alice.page
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"page is {overflow}px wider than the screen"
    for selector in ("#nick", "#join-input", "#room-list", ".room:not([hidden]) .composer-input"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375, selector
    expect(alice.box(room).locator(".composer-input")).to_be_in_viewport()
    expect(alice.box(room).locator(".leave")).to_be_in_viewport()


def test_message_sent_while_the_server_is_down_is_pending_then_confirmed_once(
    own_server: Any, new_context: Any
) -> None:
    """A message sent while the server is stopped shows "sending…"; after the restart it is
    stored, shown confirmed with its id, and appears once on both pages."""
    server = own_server()
    alice, bob = Chat(new_context(), server.url), Chat(new_context(), server.url)
    room = "pending"
    alice.join(room)
    bob.join(room)
    server.stop()
    expect(alice.page.locator("#conn-state")).to_have_text("reconnecting…")
    text = unique("sent while down")
    box = alice.show(room)
    box.locator(".composer-input").fill(text)
    box.locator(".composer-input").press("Enter")
    sent = alice.message(room, text)
    expect(sent).to_have_count(1)
    expect(sent).to_have_class(re.compile(r"\bpending\b"))
    expect(sent.locator(".status")).to_have_text("sending…")
    expect(box.locator(".composer-input")).to_have_value("")

    server.start()  # same port, same SQLite file: both pages recover their sessions
    expect(sent).not_to_have_class(re.compile(r"\bpending\b"), timeout=20_000)
    expect(sent).to_have_attribute("data-id", re.compile(r"^\d+$"))
    expect(sent.locator(".status")).to_have_count(0)
    got = bob.message(room, text)
    expect(got).to_have_count(1)
    assert got.get_attribute("data-id") == sent.get_attribute("data-id")
    later = unique("later")
    bob.say(room, later)
    expect(alice.message(room, later)).to_have_count(1)
    expect(alice.message(room, text)).to_have_count(1)
    expect(bob.message(room, text)).to_have_count(1)


def test_gap_is_filled_after_a_reconnect_the_server_did_not_recover(
    own_server: Any, new_context: Any, tmp_path: Path
) -> None:
    """With --no-recovery, 120 messages posted (through another server on the same database)
    while the page was cut off are fetched with history after the last id it had: all of
    them, in order, once, between what it had and what comes next."""
    server = own_server("--no-recovery", "--message-rate", "0")
    room = "gap"
    alice = Chat(new_context(), server.url)
    box = alice.join(room)
    post_messages(server.url, room, "seen-", 3)
    texts = box.locator(".log .msg .text")
    expect(texts).to_have_count(3)
    server.stop()
    expect(alice.page.locator("#conn-state")).to_have_text("reconnecting…")
    other = salas_serve(tmp_path, "--message-rate", "0").start()
    try:
        post_messages(other.url, room, "missed-", 120)
    finally:
        other.stop()
    server.start()
    expect(alice.page.locator("#conn-state")).to_have_text("online", timeout=20_000)
    post_messages(server.url, room, "after-", 1)
    expected = [f"seen-{i:04d}" for i in range(3)] + [f"missed-{i:04d}" for i in range(120)]
    expect(texts).to_have_text([*expected, "after-0000"], timeout=20_000)
    ids = [
        int(i) for i in box.locator(".log .msg").evaluate_all("els => els.map(e => e.dataset.id)")
    ]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_a_refused_message_shows_failed_and_retry_sends_it_once(
    own_server: Any, new_context: Any
) -> None:
    """A message the server refuses (rate limit) shows "not sent" with Retry; Retry sends it
    again and it then appears once, on both pages."""
    server = own_server("--message-rate", "1", "--message-burst", "1")
    room = "refused"
    alice, bob = Chat(new_context(), server.url), Chat(new_context(), server.url)
    alice.join(room)
    bob.join(room)
    first, second = unique("first"), unique("second")
    alice.show(room)
    # The join spent alice's one token (every chat event spends from the same budget): after
    # a second it is back, and a burst of one cannot bank more.
    alice.page.wait_for_timeout(1100)
    # Both in one go: the second reaches the server within a second of the first.
    alice.page.evaluate(
        """([room, texts]) => {
            const box = document.querySelector(`.room[data-room="${room}"]`);
            const input = box.querySelector(".composer-input");
            for (const text of texts) {
                input.value = text;
                box.querySelector(".composer").requestSubmit();
            }
        }""",
        [room, [first, second]],
    )
    refused = alice.message(room, second)
    expect(refused).to_have_class(re.compile(r"\bfailed\b"))
    expect(refused.locator(".status")).to_contain_text("not sent")
    expect(alice.page.locator("#errors .error-item")).to_have_attribute("data-code", "rate_limited")
    expect(bob.message(room, first)).to_have_count(1)
    for _ in range(20):  # the user tries again until the rate limit lets it through
        alice.page.wait_for_timeout(300)
        refused.locator(".retry").click()
        expect(refused).not_to_have_class(re.compile(r"\bpending\b"))
        if "failed" not in (refused.get_attribute("class") or ""):
            break
    expect(refused).to_have_attribute("data-id", re.compile(r"^\d+$"))
    expect(bob.message(room, second)).to_have_count(1)
    expect(alice.message(room, second)).to_have_count(1)
    expect(bob.box(room).locator(".log .msg .text")).to_have_text([first, second])

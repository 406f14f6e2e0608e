"""Engine.IO v4 on the wire: raw HTTP long-polling and raw websocket exchanges.

The exchanges are those the engine.io-protocol document describes; where it is silent (error
bodies, limits, CORS) the expectations are what the Node.js reference server does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import websockets
from websockets.asyncio.client import connect

from tests.integration.itest_support import AppProcess
from tests.integration.itest_wire import PATH, Polling, RawWS, http

pytestmark = pytest.mark.timeout(60)

SHORT_PING = {"PING_INTERVAL_MS": 300, "PING_TIMEOUT_MS": 200}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _disconnect_reason(app: AppProcess, sio_sid: str, timeout: float = 3.0) -> str | None:
    """The reason the server gave for the disconnection of ``sio_sid`` (via another client)."""
    observer = await RawWS.open(app)
    try:
        await observer.sio_connect()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            [log] = await observer.call("disconnect_log")
            for entry in log:
                if entry["id"] == sio_sid:
                    return str(entry["reason"])
            await asyncio.sleep(0.05)
        return None
    finally:
        await observer.close()


# --- handshake --------------------------------------------------------------------------


async def test_polling_handshake_fields(app: AppProcess, session: aiohttp.ClientSession) -> None:
    """The polling handshake answers an open packet with sid, upgrades, ping settings and
    maxPayload."""
    resp = await http(session, app, "GET", {"EIO": "4", "transport": "polling"})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert resp.text.startswith("0")
    data = json.loads(resp.text[1:])
    assert set(data) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert isinstance(data["sid"], str) and data["sid"]
    assert data["upgrades"] == ["websocket"]
    assert data["pingInterval"] == 25000
    assert data["pingTimeout"] == 20000
    assert data["maxPayload"] == 1_000_000


@pytest.mark.app_env(**SHORT_PING, MAX_PAYLOAD=1000)
async def test_websocket_handshake_fields(app: AppProcess) -> None:
    """A websocket-only handshake gets the open packet first, with no upgrades and the configured
    limits."""
    ws = await RawWS.open(app)
    try:
        assert set(ws.handshake) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
        assert ws.handshake["upgrades"] == []
        assert ws.handshake["pingInterval"] == 300
        assert ws.handshake["pingTimeout"] == 200
        assert ws.handshake["maxPayload"] == 1000
    finally:
        await ws.close()


async def test_session_ids_are_distinct(app: AppProcess, session: aiohttp.ClientSession) -> None:
    """Each handshake gets a new, distinct session id."""
    sids = set()
    for _ in range(5):
        sids.add((await Polling(session, app).open())["sid"])
    assert len(sids) == 5


# --- long-polling payloads ----------------------------------------------------------------


async def test_polling_post_and_get_payloads(
    app: AppProcess, session: aiohttp.ClientSession
) -> None:
    """POST answers "ok"; several packets in one POST separated by \\x1e are all processed."""
    poll = Polling(session, app)
    await poll.open()
    resp = await poll.post("40")
    assert (resp.status, resp.text) == (200, "ok")
    [connect_reply] = await poll.packets(1)
    assert connect_reply.startswith("40{")
    resp = await poll.post('421["echo","a"]', '422["echo","b"]', '42["echo_event",3]')
    assert (resp.status, resp.text) == (200, "ok")
    replies = await poll.packets(3)
    assert sorted(replies) == sorted(['431["a"]', '432["b"]', '42["echo",3]'])


async def test_polling_payload_batches_pending_packets(
    app: AppProcess, session: aiohttp.ClientSession
) -> None:
    """Packets queued while no GET is pending come back together in one \\x1e-joined payload."""
    poll = Polling(session, app)
    await poll.open()
    await poll.post("40")
    await poll.packets(1)
    await poll.post(*(f'42{i}["echo",{i}]' for i in range(1, 6)))
    await asyncio.sleep(0.3)
    resp = await poll.get()
    assert resp.status == 200
    assert resp.packets == [f"43{i}[{i}]" for i in range(1, 6)]


async def test_polling_binary_is_base64(app: AppProcess, session: aiohttp.ClientSession) -> None:
    """Binary attachments travel as "b"+base64 packets in polling payloads, both ways."""
    poll = Polling(session, app)
    await poll.open()
    await poll.post("40")
    await poll.packets(1)
    resp = await poll.post('451-7["binary",{"_placeholder":true,"num":0},"x"]', "bAQID")
    assert resp.status == 200
    head, attachment = await poll.packets(2)
    assert head.startswith("461-7[")
    assert json.loads(head[len("461-7") :]) == [{"_placeholder": True, "num": 0}, "x"]
    assert attachment == "bAQID"
    await poll.post('451-["echo_event",{"k":{"_placeholder":true,"num":0}}]', "b/wA=")
    head, attachment = await poll.packets(2)
    assert head.startswith("451-[")
    assert json.loads(head[len("451-") :]) == ["echo", {"k": {"_placeholder": True, "num": 0}}]
    assert attachment == "b/wA="


# --- heartbeat ------------------------------------------------------------------------------


@pytest.mark.app_env(**SHORT_PING)
async def test_ping_pong_keeps_websocket_session(app: AppProcess) -> None:
    """The server pings every pingInterval; answering pongs keeps the session alive."""
    ws = await RawWS.open(app)
    try:
        await ws.sio_connect()
        assert await ws.quiet(1.3) == []
        assert ws.pings >= 3
        assert await ws.call("echo", "alive") == ["alive"]
    finally:
        await ws.close()


@pytest.mark.app_env(**SHORT_PING)
async def test_ping_pong_keeps_polling_session(
    app: AppProcess, session: aiohttp.ClientSession
) -> None:
    """Over polling the ping arrives in a GET; a POSTed pong keeps the session alive."""
    poll = Polling(session, app)
    await poll.open()
    await poll.post("40")
    await poll.packets(1)
    pings = 0
    deadline = time.monotonic() + 1.3
    while time.monotonic() < deadline:
        resp = await poll.get()
        assert resp.status == 200, resp
        if "2" in resp.packets:
            pings += 1
            assert (await poll.post("3")).status == 200
    assert pings >= 3
    await poll.post('421["echo","alive"]')
    assert await poll.packets(1) == ['431["alive"]']


@pytest.mark.app_env(**SHORT_PING)
async def test_no_pong_closes_websocket_session(app: AppProcess) -> None:
    """Without a pong the server closes the websocket session ("ping timeout")."""
    ws = await RawWS.open(app)
    ws.auto_pong = False
    sio_sid = await ws.sio_connect()
    started = time.monotonic()
    assert await ws.closed(timeout=3.0)
    assert time.monotonic() - started < 2.0
    assert ws.pings == 1
    assert await _disconnect_reason(app, sio_sid) == "ping timeout"


@pytest.mark.app_env(**SHORT_PING)
async def test_no_pong_closes_polling_session(
    app: AppProcess, session: aiohttp.ClientSession
) -> None:
    """Without a pong a polling session ends: the pending GET gets a close packet, then the sid is
    unknown."""
    poll = Polling(session, app)
    await poll.open()
    sio_sid = await poll.sio_connect()
    resp = await poll.get()
    assert resp.packets == ["2"]
    resp = await poll.get()  # pending when the ping timeout fires
    assert resp.status == 200 and resp.packets[-1] == "1"
    resp = await poll.get()
    assert resp.status == 400
    assert resp.json() == {"code": 1, "message": "Session ID unknown"}
    assert await _disconnect_reason(app, sio_sid) == "ping timeout"


# --- closing --------------------------------------------------------------------------------


async def test_polling_close_packet(app: AppProcess, session: aiohttp.ClientSession) -> None:
    """A POSTed close packet "1" ends the session: the pending GET is released with a noop "6"
    (the spec's packet "to cleanly close HTTP long-polling transport"), then the sid is
    unknown (HTTP 400)."""
    poll = Polling(session, app)
    await poll.open()
    sio_sid = await poll.sio_connect()
    pending = asyncio.create_task(poll.get())
    await asyncio.sleep(0.1)
    resp = await poll.post("1")
    assert resp.status == 200
    released = await asyncio.wait_for(pending, 3)
    assert released.status == 200
    assert released.packets == ["6"]
    resp = await poll.get()
    assert resp.status == 400
    assert resp.json() == {"code": 1, "message": "Session ID unknown"}
    assert await _disconnect_reason(app, sio_sid) == "transport close"


async def test_websocket_client_close(app: AppProcess) -> None:
    """Closing the websocket ends the session; the server reports "transport close"."""
    ws = await RawWS.open(app)
    sio_sid = await ws.sio_connect()
    await ws.close()
    assert await _disconnect_reason(app, sio_sid) == "transport close"


# --- upgrade --------------------------------------------------------------------------------


async def test_upgrade_sequence(app: AppProcess, session: aiohttp.ClientSession) -> None:
    """Upgrade: 2probe/3probe on the websocket, the pending GET released by a noop, then 5; the
    websocket carries the session and polling is refused."""
    poll = Polling(session, app)
    await poll.open()
    sio_sid = await poll.sio_connect()
    pending = asyncio.create_task(poll.get())
    await asyncio.sleep(0.1)
    ws = await RawWS.open(app, f"EIO=4&transport=websocket&sid={poll.sid}", read_open=False)
    try:
        await ws.send("2probe")
        assert await ws.recv() == "3probe"
        released = await asyncio.wait_for(pending, 3)
        assert released.status == 200
        assert released.packets == ["6"]
        await ws.send("5")
        assert await ws.call("echo", "upgraded") == ["upgraded"]
        [info] = await ws.call("handshake_info", ack_id=2)
        assert info["transport"] == "websocket"
        assert info["id"] == sio_sid
        resp = await poll.get()
        assert resp.status == 400
        assert resp.json() == {"code": 3, "message": "Bad request"}
        assert await ws.call("echo", "still", ack_id=3) == ["still"]
    finally:
        await ws.close()


async def test_upgrade_flushes_packets_buffered_during_probe(
    app: AppProcess, session: aiohttp.ClientSession
) -> None:
    """An event the server emits between probe and upgrade is delivered (over either transport)."""
    poll = Polling(session, app)
    await poll.open()
    await poll.sio_connect()
    ws = await RawWS.open(app, f"EIO=4&transport=websocket&sid={poll.sid}", read_open=False)
    try:
        await ws.send("2probe")
        assert await ws.recv() == "3probe"
        resp = await poll.post('42["echo_event","during"]')
        assert resp.status == 200
        await asyncio.sleep(0.2)
        got: list[str] = []
        try:
            polled = await poll.get(timeout=1.5)
            if polled.status == 200:
                got += polled.packets
        except TimeoutError:
            pass  # the server may hold packets for the new transport
        await ws.send("5")
        got += [f for f in await ws.quiet(0.5) if isinstance(f, str)]
        assert got.count('42["echo","during"]') == 1, got
    finally:
        await ws.close()


async def _extra_websocket_closed(app: AppProcess, query: str) -> bool:
    """Whether a websocket for ``query`` is accepted (HTTP 101: ``RawWS.open`` raises on any
    other answer) and then closed by the server within 3 s."""
    extra = await RawWS.open(app, query, read_open=False)
    try:
        await extra.quiet(3)
    except websockets.ConnectionClosed:
        return True
    finally:
        await extra.close()
    return False


async def test_second_websocket_for_a_session_is_closed(
    app: AppProcess, session: aiohttp.ClientSession
) -> None:
    """The spec: "A client MUST NOT open more than one WebSocket connection per session. Should it
    happen, the server MUST close the WebSocket connection": a second one (during or after the
    upgrade) opens and is closed, and the first keeps working."""
    poll = Polling(session, app)
    await poll.open()
    await poll.sio_connect()
    query = f"EIO=4&transport=websocket&sid={poll.sid}"
    first = await RawWS.open(app, query, read_open=False)
    try:
        await first.send("2probe")
        assert await first.recv() == "3probe"
        assert await _extra_websocket_closed(app, query)
        await first.send("5")
        assert await first.call("echo", "first") == ["first"]
        assert await _extra_websocket_closed(app, query)
        assert await first.call("echo", "still", ack_id=2) == ["still"]
    finally:
        await first.close()


# --- HTTP errors ----------------------------------------------------------------------------

BAD_VERSION = {"code": 5, "message": "Unsupported protocol version"}
BAD_TRANSPORT = {"code": 0, "message": "Transport unknown"}
BAD_SID = {"code": 1, "message": "Session ID unknown"}
BAD_METHOD = {"code": 2, "message": "Bad handshake method"}
BAD_REQUEST = {"code": 3, "message": "Bad request"}


@pytest.mark.parametrize(
    ("method", "query", "expected"),
    [
        ("GET", {"transport": "polling"}, BAD_VERSION),
        ("GET", {"EIO": "3", "transport": "polling"}, BAD_VERSION),
        ("GET", {"EIO": "5", "transport": "polling"}, BAD_VERSION),
        ("GET", {"EIO": "four", "transport": "polling"}, BAD_VERSION),
        ("GET", {"EIO": "4"}, BAD_TRANSPORT),
        ("GET", {"EIO": "4", "transport": "flashsocket"}, BAD_TRANSPORT),
        ("GET", {"EIO": "4", "transport": "webtransport"}, BAD_TRANSPORT),
        ("GET", {"EIO": "4", "transport": "polling", "sid": "nope"}, BAD_SID),
        ("POST", {"EIO": "4", "transport": "polling", "sid": "nope"}, BAD_SID),
        ("POST", {"EIO": "4", "transport": "polling"}, BAD_METHOD),
        ("PUT", {"EIO": "4", "transport": "polling"}, BAD_METHOD),
        ("GET", {"EIO": "4", "transport": "websocket"}, BAD_REQUEST),
    ],
    ids=[
        "no-EIO",
        "EIO-3",
        "EIO-5",
        "EIO-garbage",
        "no-transport",
        "transport-flashsocket",
        "transport-webtransport",
        "GET-unknown-sid",
        "POST-unknown-sid",
        "POST-handshake",
        "PUT-handshake",
        "websocket-without-upgrade",
    ],
)
async def test_http_error_bodies(
    app: AppProcess,
    session: aiohttp.ClientSession,
    method: str,
    query: dict[str, str],
    expected: dict[str, object],
) -> None:
    """Bad Engine.IO requests get HTTP 400 with a JSON {code, message} body."""
    resp = await http(session, app, method, query, data="x" if method != "GET" else None)
    assert resp.status == 400
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json() == expected


async def test_transport_mismatch_is_bad_request(
    app: AppProcess, session: aiohttp.ClientSession
) -> None:
    """A plain HTTP request naming another transport than the session's is a 400 "Bad request"."""
    poll = Polling(session, app)
    await poll.open()
    query = {"EIO": "4", "transport": "websocket", "sid": poll.sid}
    resp = await http(session, app, "GET", query)
    assert resp.status == 400
    assert resp.json() == BAD_REQUEST


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("EIO=4&transport=websocket&sid=nope", "Session ID unknown"),
        ("EIO=4&transport=foo", "Transport unknown"),
    ],
    ids=["unknown-sid", "unknown-transport"],
)
async def test_websocket_upgrade_errors(app: AppProcess, query: str, message: str) -> None:
    """A refused websocket upgrade gets HTTP 400 naming the error instead of 101."""
    with pytest.raises(websockets.InvalidStatus) as info:
        await connect(f"{app.ws_url}{PATH}?{query}", open_timeout=5)
    assert info.value.response.status_code == 400
    assert message in info.value.response.body.decode()


@pytest.mark.parametrize("query", ["EIO=3&transport=websocket", "transport=websocket"])
async def test_websocket_bad_protocol_version(app: AppProcess, query: str) -> None:
    """A websocket handshake without EIO=4 never gets an open packet (refused or closed)."""
    try:
        ws = await connect(f"{app.ws_url}{PATH}?{query}", open_timeout=5)
    except websockets.InvalidStatus as err:
        assert err.response.status_code == 400
        return
    except (websockets.InvalidHandshake, OSError):
        return
    try:
        frame = await asyncio.wait_for(ws.recv(), 3)
    except (websockets.ConnectionClosed, TimeoutError):
        return
    finally:
        await ws.close()
    assert not (isinstance(frame, str) and frame.startswith("0")), frame


async def test_duplicate_concurrent_gets_close_session(
    app: AppProcess, session: aiohttp.ClientSession
) -> None:
    """A second GET while one is pending is a 400 and ends the session (the first gets "1")."""
    poll = Polling(session, app)
    await poll.open()
    await poll.sio_connect()
    first = asyncio.create_task(poll.get())
    await asyncio.sleep(0.1)
    second = await poll.get()
    assert second.status == 400
    released = await asyncio.wait_for(first, 3)
    assert released.status == 200
    assert released.packets[-1] == "1"
    resp = await poll.get()
    assert resp.status == 400
    assert resp.json() == BAD_SID


# --- limits ---------------------------------------------------------------------------------


@pytest.mark.app_env(MAX_PAYLOAD=1000)
async def test_polling_post_over_max_payload(
    app: AppProcess, session: aiohttp.ClientSession
) -> None:
    """A POST body over maxPayload is refused with 413; the session itself stays usable."""
    poll = Polling(session, app)
    handshake = await poll.open()
    assert handshake["maxPayload"] == 1000
    await poll.sio_connect()
    big = '42["echo","' + "x" * 2000 + '"]'
    resp = await poll.post(big)
    assert resp.status == 413
    resp = await poll.post('421["echo","small"]')
    assert (resp.status, resp.text) == (200, "ok")
    assert await poll.packets(1) == ['431["small"]']


@pytest.mark.app_env(MAX_PAYLOAD=1000)
async def test_polling_max_payload_counts_bytes(
    app: AppProcess, session: aiohttp.ClientSession
) -> None:
    """maxPayload counts UTF-8 bytes, not characters: 600 "é" (1200 bytes) is over 1000."""
    poll = Polling(session, app)
    await poll.open()
    await poll.sio_connect()
    resp = await poll.post('421["echo","' + "é" * 600 + '"]')
    assert resp.status == 413
    await poll.post('422["echo","é"]')
    assert await poll.packets(1) == ['432["é"]']


@pytest.mark.app_env(MAX_PAYLOAD=1000)
async def test_websocket_max_payload_counts_bytes(app: AppProcess) -> None:
    """Over websocket too, 600 "é" (1200 bytes) is over a maxPayload of 1000: closed with 1009."""
    ws = await RawWS.open(app)
    try:
        await ws.sio_connect()
        await ws.send('42["echo","' + "é" * 600 + '"]')
        assert await ws.closed(timeout=3)
        assert ws.ws.close_code == 1009
    finally:
        await ws.close()


async def test_large_payloads_under_the_limit(
    app: AppProcess, session: aiohttp.ClientSession
) -> None:
    """A 700 kB message (under the default 1 MB maxPayload) round-trips intact on both
    transports."""
    text = "".join(chr(0x41 + i % 26) for i in range(700_000))
    poll = Polling(session, app)
    await poll.open()
    await poll.sio_connect()
    assert (await poll.post(f'421["echo","{text}"]')).status == 200
    assert await poll.packets(1) == [f'431["{text}"]']
    ws = await RawWS.open(app)
    try:
        await ws.sio_connect()
        assert await ws.call("echo", text) == [text]
    finally:
        await ws.close()


async def test_polling_binary_content_type_is_refused(
    app: AppProcess, session: aiohttp.ClientSession
) -> None:
    """EIO=4 polling bodies are text: an application/octet-stream POST is a 400 and ends the
    session."""
    poll = Polling(session, app)
    await poll.open()
    await poll.sio_connect()
    resp = await http(
        session,
        app,
        "POST",
        poll.query,
        data=b'421["echo","x"]',
        headers={"Content-Type": "application/octet-stream"},
    )
    assert resp.status == 400
    assert await poll.closed(timeout=3)


async def test_concurrent_posts_close_session(
    app: AppProcess, session: aiohttp.ClientSession
) -> None:
    """A second POST while one is still being received is a 400 and ends the session."""
    poll = Polling(session, app)
    await poll.open()
    await poll.sio_connect()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b'421["echo",'
        await asyncio.sleep(0.5)
        yield b'"a"]'

    async def slow_post() -> object:
        try:
            return await http(
                session,
                app,
                "POST",
                poll.query,
                data=slow_body(),
                headers={"Content-Type": "text/plain;charset=UTF-8"},
            )
        except aiohttp.ClientError as err:  # the server may drop the first request
            return err

    first = asyncio.create_task(slow_post())
    await asyncio.sleep(0.15)
    second = await poll.post('422["echo","b"]')
    assert second.status == 400
    await asyncio.wait_for(first, 3)
    resp = await poll.get()
    if resp.status == 200:
        assert "1" in resp.packets, resp
        resp = await poll.get()
    assert resp.status == 400
    assert resp.json() == BAD_SID


@pytest.mark.app_env(MAX_PAYLOAD=1000)
async def test_websocket_message_over_max_payload(app: AppProcess) -> None:
    """A websocket message over maxPayload closes that connection with 1009; others go on."""
    bystander = await RawWS.open(app)
    offender = await RawWS.open(app)
    try:
        await bystander.sio_connect()
        await offender.sio_connect()
        await offender.send('42["echo","' + "x" * 2000 + '"]')
        assert await offender.closed(timeout=3)
        assert offender.ws.close_code == 1009
        assert await bystander.call("echo", "fine") == ["fine"]
    finally:
        await bystander.close()
        await offender.close()


# --- CORS -----------------------------------------------------------------------------------

ORIGIN = "http://client.test"


async def test_cors_preflight_wildcard(app: AppProcess, session: aiohttp.ClientSession) -> None:
    """With cors "*", a preflight is answered 2xx allowing the origin, GET/POST and the asked
    headers."""
    resp = await http(
        session,
        app,
        "OPTIONS",
        {"EIO": "4", "transport": "polling"},
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert resp.status in (200, 204)
    allow_origin = resp.headers.get("Access-Control-Allow-Origin")
    assert allow_origin in ("*", ORIGIN)
    methods = {m.strip().upper() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST"} <= methods
    allowed = resp.headers.get("Access-Control-Allow-Headers", "").lower()
    assert "content-type" in allowed or allowed == "*"
    if allow_origin == "*":
        assert resp.headers.get("Access-Control-Allow-Credentials") != "true"


async def test_cors_headers_on_responses(app: AppProcess, session: aiohttp.ClientSession) -> None:
    """With cors "*", handshake, POST and error responses all carry Access-Control-Allow-Origin."""
    headers = {"Origin": ORIGIN}
    resp = await http(session, app, "GET", {"EIO": "4", "transport": "polling"}, headers=headers)
    assert resp.status == 200
    allow_origin = resp.headers.get("Access-Control-Allow-Origin")
    assert allow_origin in ("*", ORIGIN)
    if allow_origin == "*":
        assert resp.headers.get("Access-Control-Allow-Credentials") != "true"
    sid = json.loads(resp.text[1:])["sid"]
    query = {"EIO": "4", "transport": "polling", "sid": sid}
    resp = await http(session, app, "POST", query, data="40", headers=headers)
    assert resp.status == 200
    assert resp.headers.get("Access-Control-Allow-Origin") in ("*", ORIGIN)
    query["sid"] = "nope"
    resp = await http(session, app, "GET", query, headers=headers)
    assert resp.status == 400
    assert resp.headers.get("Access-Control-Allow-Origin") in ("*", ORIGIN)


@pytest.mark.app_env(CORS_ORIGIN="http://allowed.test")
async def test_cors_specific_origin(app: AppProcess, session: aiohttp.ClientSession) -> None:
    """With one allowed origin, that origin is allowed and another origin is not."""
    query = {"EIO": "4", "transport": "polling"}
    resp = await http(session, app, "GET", query, headers={"Origin": "http://allowed.test"})
    assert resp.status == 200
    assert resp.headers.get("Access-Control-Allow-Origin") == "http://allowed.test"
    assert "origin" in resp.headers.get("Vary", "").lower()
    resp = await http(
        session,
        app,
        "OPTIONS",
        query,
        headers={"Origin": "http://allowed.test", "Access-Control-Request-Method": "POST"},
    )
    assert resp.status in (200, 204)
    assert resp.headers.get("Access-Control-Allow-Origin") == "http://allowed.test"
    resp = await http(session, app, "GET", query, headers={"Origin": "http://evil.test"})
    assert resp.headers.get("Access-Control-Allow-Origin") not in ("*", "http://evil.test")

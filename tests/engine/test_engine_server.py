"""EngineServer: routing, handshakes and the HTTP error answers (salas.engine.server, errors)."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from salas.engine.errors import EngineErrorCode, error_body


async def test_polling_handshake_fields(engine) -> None:
    """A polling handshake answers an OPEN packet with sid, upgrades and the timings in ms."""
    h = await engine(ping_interval=1.5, ping_timeout=0.25, max_payload=12345)
    response = await h.request("GET", h.path())
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.body.startswith(b"0")
    data = orjson.loads(response.body[1:])
    assert set(data) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert isinstance(data["sid"], str) and len(data["sid"]) >= 16
    assert data["upgrades"] == ["websocket"]
    assert data["pingInterval"] == 1500
    assert data["pingTimeout"] == 250
    assert data["maxPayload"] == 12345
    assert data["sid"] in h.sessions
    assert h.sessions[data["sid"]].transport == "polling"


async def test_handshake_sids_are_unique(engine) -> None:
    """Each handshake creates its own session with a fresh sid."""
    h = await engine()
    sids = {(await h.handshake())[0] for _ in range(5)}
    assert len(sids) == 5
    assert set(h.sessions) == sids


async def test_engine_path_without_trailing_slash(engine) -> None:
    """The engine path answers with or without its trailing slash."""
    h = await engine(path="/rt")
    assert h.config.path == "/rt/"
    response = await h.request("GET", "/rt?EIO=4&transport=polling")
    assert response.status == 200
    assert response.body.startswith(b"0{")


async def test_no_upgrades_offered_when_websocket_disabled(engine) -> None:
    """With polling as the only transport, the handshake offers no upgrade."""
    h = await engine(transports=("polling",))
    _, data = await h.handshake()
    assert data["upgrades"] == []


async def test_websocket_handshake(engine) -> None:
    """A websocket-only session gets its OPEN packet as the first frame, with no upgrades."""
    h = await engine(ping_interval=2, ping_timeout=1)
    ws = await h.ws_connect()
    first = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(first, str) and first[0] == "0"
    data = orjson.loads(first[1:])
    assert data["upgrades"] == []
    assert (data["pingInterval"], data["pingTimeout"]) == (2000, 1000)
    session = h.sessions[data["sid"]]
    assert session.transport == "websocket"
    session.send_message("hi")
    assert await asyncio.wait_for(ws.recv(), 5) == "4hi"
    await ws.send("4back")
    await asyncio.sleep(0.05)
    assert h.messages[data["sid"]] == ["back"]
    await ws.close()


async def test_websocket_only_server_refuses_polling(engine) -> None:
    """With websocket as the only transport, a polling request is an unknown transport."""
    h = await engine(transports=("websocket",))
    response = await h.request("GET", h.path())
    assert response.status == 400
    assert response.json() == {"code": 0, "message": "Transport unknown"}
    ws, _ = await h.ws_open()
    await ws.close()


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        ("EIO=3&transport=polling", 5, "Unsupported protocol version"),
        ("transport=polling", 5, "Unsupported protocol version"),
        ("EIO=4&transport=carrier-pigeon", 0, "Transport unknown"),
        ("EIO=4", 0, "Transport unknown"),
        ("EIO=4&transport=polling&sid=nope", 1, "Session ID unknown"),
    ],
)
async def test_bad_query_errors(engine, query: str, code: int, message: str) -> None:
    """Bad EIO / transport / sid are answered 400 with the reference server's JSON body."""
    h = await engine()
    response = await h.request("GET", f"{h.config.path}?{query}")
    assert response.status == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"code": code, "message": message}


async def test_post_handshake_is_bad_handshake_method(engine) -> None:
    """A handshake must be a GET: POST without sid answers code 2."""
    h = await engine()
    response = await h.request("POST", h.path(), b"40")
    assert response.status == 400
    assert response.json() == {"code": 2, "message": "Bad handshake method"}
    assert h.sessions == {}


async def test_unknown_method_on_session_is_bad_request(engine) -> None:
    """A PUT on an existing polling session answers code 3 (Bad request)."""
    h = await engine()
    sid, _ = await h.handshake()
    response = await h.request("PUT", h.path(sid=sid), b"x")
    assert response.status == 400
    assert response.json() == {"code": 3, "message": "Bad request"}


async def test_websocket_handshake_without_upgrade_is_bad_request(engine) -> None:
    """transport=websocket on a plain GET (no Upgrade) answers code 3."""
    h = await engine()
    response = await h.request("GET", h.path(transport="websocket"))
    assert response.status == 400
    assert response.json() == {"code": 3, "message": "Bad request"}
    assert h.sessions == {}


async def test_websocket_with_unknown_sid_is_refused(engine) -> None:
    """A websocket upgrade for an unknown sid is refused with HTTP 400."""
    h = await engine()
    with pytest.raises(InvalidStatus) as info:
        await h.ws_connect(sid="does-not-exist")
    assert info.value.response.status_code == 400
    assert orjson.loads(info.value.response.body) == {"code": 1, "message": "Session ID unknown"}


async def test_second_websocket_for_websocket_session_is_closed(engine) -> None:
    """A second websocket for a session already on websocket opens (101) and is closed at once
    ("the server MUST close the WebSocket connection"); the session carries on."""
    h = await engine()
    ws, sid = await h.ws_open()
    extra = await h.ws_connect(sid=sid)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(extra.recv(), 3)
    assert not h.sessions[sid].closed
    h.sessions[sid].send_message("still here")
    assert await asyncio.wait_for(ws.recv(), 3) == "4still here"
    await ws.close()


def test_error_body_codes() -> None:
    """error_body maps every code to 400 (403 for FORBIDDEN) and the reference message."""
    assert error_body(EngineErrorCode.UNKNOWN_TRANSPORT) == (
        400,
        b'{"code":0,"message":"Transport unknown"}',
    )
    assert error_body(EngineErrorCode.FORBIDDEN) == (403, b'{"code":4,"message":"Forbidden"}')
    for code in EngineErrorCode:
        status, body = error_body(code)
        assert orjson.loads(body)["code"] == int(code)
        assert status == (403 if code is EngineErrorCode.FORBIDDEN else 400)


async def test_requests_outside_path_go_to_fallback(engine) -> None:
    """Requests outside the engine path reach the fallback; the default answers 404."""
    h = await engine()
    response = await h.request("GET", "/elsewhere")
    assert response.status == 404
    seen = []

    def fallback(request) -> None:
        seen.append((request.method, request.path, request.query))
        request.respond(200, b"fell back")

    h2 = await engine(fallback=fallback)
    response = await h2.request("GET", "/other?x=1")
    assert (response.status, response.body) == (200, b"fell back")
    assert seen == [("GET", "/other", {"x": "1"})]


async def test_connection_callback_error_closes_session(engine, caplog) -> None:
    """An exception in on_connection is logged and closes only that session ("server error")."""
    h = await engine()
    reasons = []

    def broken(session) -> None:
        session.on_close = reasons.append
        raise RuntimeError("boom")

    h.server.on_connection = broken
    response = await h.request("GET", h.path())
    assert response.status == 200
    assert reasons == ["server error"]
    assert h.server.sessions == {}
    assert "boom" in caplog.text


async def test_close_ends_sessions_and_releases_polls(engine) -> None:
    """EngineServer.close() closes every session; a waiting GET gets the close packet."""
    h = await engine()
    sid, _ = await h.handshake()
    ws, ws_sid = await h.ws_open()
    poll = asyncio.create_task(h.poll(sid))
    await asyncio.sleep(0.05)
    assert not poll.done()
    await h.server.close()
    response = await asyncio.wait_for(poll, 3)
    assert (response.status, response.body) == (200, b"1")
    assert h.closed == {sid: "server shutting down", ws_sid: "server shutting down"}
    await asyncio.wait_for(ws.wait_closed(), 3)
    assert h.server.sessions == {}


async def test_no_new_session_after_close(engine, read_response) -> None:
    """After close(), a keep-alive connection opened before cannot start a new session."""
    h = await engine()
    reader, writer = await asyncio.open_connection("127.0.0.1", h.port)
    request = f"GET {h.path()} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    writer.write(request)
    first = await asyncio.wait_for(read_response(reader), 3)
    assert first.status == 200
    await h.server.close()
    assert h.server.sessions == {}
    writer.write(request)
    try:
        await asyncio.wait_for(read_response(reader), 1)
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
        pass  # refused by closing the connection: fine
    finally:
        writer.close()
    assert h.server.sessions == {}
    assert len(h.sessions) == 1  # only the session from before close()


async def _adopted_connection(h) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A TCP connection accepted outside the engine and handed to `adopt` with its first
    bytes (half a head), the rest sent by the client afterwards: (reader, writer, answer)."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    try:
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        accepted, _ = listener.accept()
    finally:
        listener.close()
    head = f"GET {h.path()} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    h.server.adopt(accepted, head[:20])
    await asyncio.sleep(0.05)
    writer.write(head[20:])
    answer = await asyncio.wait_for(reader.readuntil(b'"maxPayload"'), 5)
    return reader, writer, answer


async def test_adopt_serves_a_socket_accepted_elsewhere(engine) -> None:
    """`adopt(sock, initial)`: the bytes already read come first, then the socket's own, and
    the session's sid starts with `sid_prefix`; the connection is served as any other."""
    h = await engine()
    h.server.sid_prefix = "3."
    _, writer, answer = await _adopted_connection(h)
    try:
        assert answer.startswith(b"HTTP/1.1 200 OK")
        sid = answer.split(b'"sid":"', 1)[1].split(b'"', 1)[0].decode()
        assert sid.startswith("3.") and sid in h.sessions
        assert h.server.limits.total == 1  # counted as if accepted here
    finally:
        writer.close()


async def test_misrouted_sees_unknown_sids_first(engine) -> None:
    """A request with an unknown sid goes to `misrouted`; when it declines (False) the
    standard 400 follows, with what it changed (here: Connection: close)."""
    h = await engine()
    seen = []

    def misrouted(request) -> bool:
        seen.append(request.query["sid"])
        request.keep_alive = False
        return False

    h.server.misrouted = misrouted
    reader, writer = await asyncio.open_connection("127.0.0.1", h.port)
    try:
        for sid, connection in (("0.mine", b"keep-alive"), ("1.elsewhere", b"close")):
            h.server.misrouted = misrouted if sid != "0.mine" else None
            writer.write(f"GET {h.path(sid=sid)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 400 ")
            assert b"Connection: " + connection in head
            body = await reader.readuntil(b"}")
            assert orjson.loads(body) == {"code": 1, "message": "Session ID unknown"}
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()
    assert seen == ["1.elsewhere"]

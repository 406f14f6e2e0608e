"""HTTP/1.1 connections parsed by httptools (salas.engine.http), over loopback."""

from __future__ import annotations

import asyncio


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


def _echo(request) -> None:
    """A fallback answering with what it parsed."""
    body = f"{request.method} {request.path} {sorted(request.query.items())} {request.body!r}"
    request.respond(200, body.encode(), [("X-Test", "1")])


async def test_request_parsed_and_answered(engine, http) -> None:
    """Method, path, query and body are parsed; extra headers and Content-Length are sent."""
    h = await engine(fallback=_echo)
    response = await http(h.port, "POST", "/p/q?a=1&b=&a=2", b"payload")
    assert response.status == 200
    assert response.headers["x-test"] == "1"
    assert response.headers["content-length"] == str(len(response.body))
    assert response.text == "POST /p/q [('a', '2'), ('b', '')] b'payload'"


async def test_keep_alive_serves_requests_in_order(engine, read_response) -> None:
    """Two requests on one keep-alive connection (pipelined) are answered in order."""
    h = await engine(fallback=_echo)
    reader, writer = await _connect(h.port)
    writer.write(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n")
    first = await asyncio.wait_for(read_response(reader), 3)
    second = await asyncio.wait_for(read_response(reader), 3)
    assert first.text.startswith("GET /one ")
    assert second.text.startswith("GET /two ")
    assert first.headers["connection"] == "keep-alive"
    writer.write(b"GET /three HTTP/1.1\r\nHost: x\r\n\r\n")
    third = await asyncio.wait_for(read_response(reader), 3)
    assert third.text.startswith("GET /three ")
    writer.close()


async def test_pipelined_request_waits_for_held_poll(engine, read_response) -> None:
    """A request behind a held long-polling GET on the same connection waits its turn."""
    h = await engine()
    sid, _ = await h.handshake()
    reader, writer = await _connect(h.port)
    path = h.path(sid=sid)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n4hello".encode()
    )
    await asyncio.sleep(0.1)
    assert h.messages[sid] == []  # the POST is not handled while the GET is held
    h.sessions[sid].send_message("answer")
    first = await asyncio.wait_for(read_response(reader), 3)
    second = await asyncio.wait_for(read_response(reader), 3)
    assert first.body == b"4answer"
    assert second.body == b"ok"
    assert h.messages[sid] == ["hello"]
    writer.close()


async def test_connection_close_honoured(engine, read_response) -> None:
    """A request with `Connection: close` is answered `Connection: close`, then closed."""
    h = await engine(fallback=_echo)
    reader, writer = await _connect(h.port)
    writer.write(b"GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    response = await asyncio.wait_for(read_response(reader), 3)
    try:
        assert response.headers["connection"] == "close"
        assert await asyncio.wait_for(reader.read(), 1) == b""
    finally:
        writer.close()


async def test_http10_without_keep_alive_is_closed(engine) -> None:
    """An HTTP/1.0 request (no keep-alive) is answered, then the connection closes."""
    h = await engine(fallback=_echo)
    reader, writer = await _connect(h.port)
    writer.write(b"GET /old HTTP/1.0\r\nHost: x\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 3)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"Connection: close\r\n" in data
    writer.close()


async def test_malformed_request_is_400_and_closed(engine) -> None:
    """Bytes that are not HTTP get 400 and the connection is closed."""
    h = await engine(fallback=_echo)
    reader, writer = await _connect(h.port)
    writer.write(b"this is not http\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 3)
    assert data.startswith(b"HTTP/1.1 400 ")
    writer.close()


async def test_oversized_headers_are_400(engine) -> None:
    """Headers above 64 KiB are refused with 400."""
    h = await engine(fallback=_echo)
    reader, writer = await _connect(h.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 3)
    assert data.startswith(b"HTTP/1.1 400 ")
    writer.close()


async def test_large_body_outside_engine_path_is_413(engine, http) -> None:
    """Routes outside the engine path refuse bodies above the default 1 MB bound."""
    h = await engine(fallback=_echo, max_payload=10)
    response = await http(h.port, "POST", "/upload", b"x" * 1_000_001)
    assert response.status == 413
    ok = await http(h.port, "POST", "/upload", b"x" * 100)  # engine's 10-byte bound not used
    assert ok.status == 200


async def test_chunked_body_over_limit_is_413(engine) -> None:
    """A chunked body that grows past the bound is refused with 413 (no Content-Length)."""
    h = await engine(max_payload=100)
    sid, _ = await h.handshake()
    reader, writer = await _connect(h.port)
    chunk = b"4" + b"x" * 150
    writer.write(
        f"POST {h.path(sid=sid)} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + f"{len(chunk):x}\r\n".encode()
        + chunk
        + b"\r\n0\r\n\r\n"
    )
    data = await asyncio.wait_for(reader.read(), 3)
    assert data.startswith(b"HTTP/1.1 413 ")
    assert h.messages[sid] == []
    writer.close()


async def test_handler_exception_is_500(engine, http, caplog) -> None:
    """An exception in the request handler answers 500 and is logged."""

    def broken(request) -> None:
        raise RuntimeError("handler broke")

    h = await engine(fallback=broken)
    response = await http(h.port, "GET", "/x")
    assert response.status == 500
    assert "handler broke" in caplog.text


async def test_head_has_no_body(engine, read_response) -> None:
    """A HEAD answer has the headers (with the body's length) and no body."""
    h = await engine(fallback=lambda r: r.respond(200, b"twelve bytes"))
    reader, writer = await _connect(h.port)
    writer.write(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(read_response(reader, head_only=True), 3)
    assert head.headers["content-length"] == "12"
    follow = await asyncio.wait_for(read_response(reader), 3)
    assert follow.body == b"twelve bytes"  # nothing of a HEAD body came in between
    writer.close()


async def test_no_content_has_no_content_length(engine, http) -> None:
    """A 204 answer carries neither Content-Type nor Content-Length."""
    h = await engine(fallback=lambda r: r.respond(204))
    response = await http(h.port, "GET", "/")
    assert response.status == 204
    assert "content-length" not in response.headers
    assert "content-type" not in response.headers


class _Sink:
    """A transport that takes whatever is written."""

    def write(self, data: bytes) -> None:
        return None

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 1) if name == "peername" else default

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        return None


def _parse_request(head: bytes):
    """The request `head` parses to, on a connection of its own."""
    from salas.engine.http import HttpConnection

    seen = []
    connection = HttpConnection(seen.append, lambda r: 1000)
    connection.connection_made(_Sink())
    connection.data_received(head)
    (request,) = seen
    return request


async def test_header_names_shared_and_their_cache_bounded() -> None:
    """Common header names are one string for every request; made-up names cannot grow the
    cache past its bound, and still parse."""
    from salas.engine import http as http_module

    def parse(head: bytes) -> dict[str, str]:
        return _parse_request(head).headers

    first = parse(b"GET / HTTP/1.1\r\nHost: a\r\nX-Custom: 1\r\n\r\n")
    second = parse(b"GET / HTTP/1.1\r\nHOST: b\r\nX-Custom: 2\r\n\r\n")
    assert first == {"host": "a", "x-custom": "1"}
    assert second == {"host": "b", "x-custom": "2"}
    (name_one,) = [k for k in first if k == "x-custom"]
    (name_two,) = [k for k in second if k == "x-custom"]
    assert name_one is name_two
    made_up = b"".join(b"X-Made-Up-%d: v\r\n" % i for i in range(http_module._HEADER_NAMES_KEPT))
    headers = parse(b"GET / HTTP/1.1\r\nHost: c\r\n" + made_up + b"\r\n")
    assert len(headers) == http_module._HEADER_NAMES_KEPT + 1
    assert len(http_module._HEADER_NAMES) <= http_module._HEADER_NAMES_KEPT


async def test_raw_headers_keep_repeated_lines_in_order() -> None:
    """raw_headers lists every header line as sent, a repeated one once per line (headers
    joins it); without repeats it is headers' items; it is a copy."""
    repeated = _parse_request(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nCookie: c1\r\nCookie: c2\r\nX-B: 2\r\n"
        b"cookie: c3\r\n\r\n"
    )
    assert repeated.headers == {"host": "a", "x-a": "1", "cookie": "c1, c2, c3", "x-b": "2"}
    assert repeated.raw_headers == [
        ("host", "a"),
        ("x-a", "1"),
        ("cookie", "c1"),
        ("cookie", "c2"),
        ("x-b", "2"),
        ("cookie", "c3"),
    ]
    plain = _parse_request(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")
    assert plain.raw_headers == [("host", "a"), ("upgrade", "websocket")]
    plain.raw_headers.append(("x-injected", "1"))
    assert plain.raw_headers == [("host", "a"), ("upgrade", "websocket")]


async def test_header_values_shared_and_their_cache_bounded(monkeypatch) -> None:
    """Values of headers that repeat across clients (user-agent, host, upgrade) are one
    string for every request, per-request ones (the websocket key) are not; a flood of
    made-up values cannot grow the table past its bound, and every value still parses."""
    from salas.engine import http as http_module

    monkeypatch.setattr(http_module, "_HEADER_VALUES", {})  # (the flood below fills it)

    def head(agent: bytes, key: bytes = b"k") -> bytes:
        return (
            b"GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: "
            + agent
            + (b"\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
        )

    first = _parse_request(head(b"Mozilla/5.0 (X11) Firefox/140.0", b"same-key"))
    second = _parse_request(head(b"Mozilla/5.0 (X11) Firefox/140.0", b"same-key"))
    assert first.headers == second.headers
    assert first.headers["user-agent"] is second.headers["user-agent"]
    assert first.headers["sec-websocket-key"] is not second.headers["sec-websocket-key"]
    long_agent = b"A" * (http_module._HEADER_VALUE_MAX + 1)
    assert _parse_request(head(long_agent)).headers["user-agent"] == long_agent.decode()
    assert long_agent not in http_module._HEADER_VALUES
    for i in range(http_module._HEADER_VALUES_KEPT + 50):
        agent = b"bot/%d" % i
        assert _parse_request(head(agent)).headers["user-agent"] == agent.decode()
    assert len(http_module._HEADER_VALUES) <= http_module._HEADER_VALUES_KEPT
    honest = _parse_request(head(b"Mozilla/5.0 (X11) Firefox/140.0"))
    assert honest.headers["user-agent"] == "Mozilla/5.0 (X11) Firefox/140.0"


def test_parse_query_shares_strings_not_dicts() -> None:
    """Requests with the same query get dicts of their own (changing one changes no other)
    holding the same strings; the last of a repeated name wins, blank values are kept;
    long queries are parsed as well, without being remembered."""
    from salas.engine.http import _QUERY_CACHED_MAX, _query_pairs, parse_query

    first = parse_query("EIO=4&transport=websocket")
    second = parse_query("EIO=4&transport=websocket")
    assert first == second == {"EIO": "4", "transport": "websocket"}
    assert first is not second
    assert first["transport"] is second["transport"]
    first["sid"] = "x"
    assert parse_query("EIO=4&transport=websocket") == {"EIO": "4", "transport": "websocket"}
    assert parse_query("a=1&b=&a=2") == {"a": "2", "b": ""}
    assert parse_query("") == {}
    cached = _query_pairs.cache_info().currsize
    long_query = "pad=" + "x" * _QUERY_CACHED_MAX
    assert parse_query(long_query) == {"pad": "x" * _QUERY_CACHED_MAX}
    assert _query_pairs.cache_info().currsize == cached


async def test_path_params_empty_and_read_only_until_a_route_sets_them() -> None:
    """A request no route with parameters matched has empty path_params that no handler
    can add to (one table shared by all such requests)."""
    import pytest

    request = _parse_request(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
    assert dict(request.path_params) == {}
    with pytest.raises(TypeError):
        request.path_params["room"] = "x"  # type: ignore[index]


async def test_same_target_shares_its_strings() -> None:
    """Requests for the same short target get the same path and query strings (one each for
    every session's handshake), methods one string each; targets are still split and
    decoded right, long ones too."""
    from salas.engine.http import _URL_CACHED_MAX

    def target(request) -> tuple[str, str, str, str]:
        return request.method, request.raw_path, request.path, request.query_string

    head = b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: h\r\n\r\n"
    first, second = _parse_request(head), _parse_request(head)
    assert target(first) == ("GET", "/socket.io/", "/socket.io/", "EIO=4&transport=websocket")
    assert all(a is b for a, b in zip(target(first), target(second), strict=True))
    assert first.query == {"EIO": "4", "transport": "websocket"}
    odd = _parse_request(b"PURGE /a%20b/%2F?x=%41 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert target(odd) == ("PURGE", "/a%20b/%2F", "/a b//", "x=%41")
    assert odd.query == {"x": "A"}
    long_name = "n" * _URL_CACHED_MAX
    long = _parse_request(f"GET /{long_name}?q=1 HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    assert (long.path, long.query) == (f"/{long_name}", {"q": "1"})

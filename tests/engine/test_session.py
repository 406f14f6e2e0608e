"""Engine.IO sessions: long-polling, websocket, upgrade, heartbeat and output bounds
(salas.engine.session), driven over real loopback connections."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

from salas.protocol.outgoing import EncodedMessage

# -- long-polling ------------------------------------------------------------------------


async def test_poll_answers_queued_packets_at_once(engine) -> None:
    """A GET returns what was queued before it, joined into one payload."""
    h = await engine()
    sid, _ = await h.handshake()
    session = h.sessions[sid]
    session.send_message("a")
    session.send("4b")
    session.send(b"\x01\x02\x03\x04")
    response = await h.poll(sid)
    assert response.status == 200
    assert response.body == b"4a\x1e4b\x1ebAQIDBA=="


async def test_poll_queue_made_by_first_packet_and_let_go_when_answered(engine) -> None:
    """A polling session keeps a queue only while packets wait for a GET (memory per idle
    connection); packets queued after an answer go out in the next one, in order."""
    h = await engine()
    sid, _ = await h.handshake()
    session = h.sessions[sid]
    assert session._queue == ()
    session.send_message("a")
    session.send_encoded(EncodedMessage(["4b"]))
    assert session._queue == ["4a", "4b"]
    assert (await h.poll(sid)).body == b"4a\x1e4b"
    assert session._queue == ()
    session.send_message("c")
    assert (await h.poll(sid)).body == b"4c"


async def test_poll_held_until_message_sent(engine) -> None:
    """A GET with nothing to send is held, then answered when a message is sent."""
    h = await engine()
    sid, _ = await h.handshake()
    poll = asyncio.create_task(h.poll(sid))
    await asyncio.sleep(0.1)
    assert not poll.done()
    h.sessions[sid].send_message("hello")
    h.sessions[sid].send_message("world")  # same iteration: same answer
    response = await asyncio.wait_for(poll, 3)
    assert (response.status, response.body) == (200, b"4hello\x1e4world")


async def test_poll_utf8_body(engine) -> None:
    """Non-ASCII text goes out as UTF-8 in the polling body."""
    h = await engine()
    sid, _ = await h.handshake()
    h.sessions[sid].send_message("héllo ☃")
    response = await h.poll(sid)
    assert response.body.decode("utf-8") == "4héllo ☃"


async def test_post_delivers_messages(engine) -> None:
    """A POST's packets reach on_message in order, binary decoded from base64; answer `ok`."""
    h = await engine()
    sid, _ = await h.handshake()
    response = await h.post(sid, "4hello\x1e4wörld\x1ebAQIDBA==\x1e4")
    assert (response.status, response.body) == (200, b"ok")
    assert h.messages[sid] == ["hello", "wörld", b"\x01\x02\x03\x04", ""]


async def test_post_malformed_payload_closes_session(engine) -> None:
    """A POST with an unknown packet type answers 400 and closes the session."""
    h = await engine()
    sid, _ = await h.handshake()
    response = await h.post(sid, "4ok\x1e9bad")
    assert response.status == 400
    assert h.closed == {sid: "parse error"}
    assert h.messages[sid] == []
    assert sid not in h.server.sessions


async def test_post_with_more_than_max_post_packets_refused(engine) -> None:
    """A POST of max_post_packets packets is handled; one more answers 400, closes the
    session and delivers none of them."""
    h = await engine(max_post_packets=5)
    sid, _ = await h.handshake()
    response = await h.post(sid, "\x1e".join(["4a"] * 5))
    assert (response.status, h.messages[sid]) == (200, ["a"] * 5)
    response = await h.post(sid, "\x1e".join(["4b"] * 6))
    assert response.status == 400
    assert h.closed == {sid: "transport error"}
    assert h.messages[sid] == ["a"] * 5
    assert h.server.inbound_stats.posts_refused == 1


async def test_post_invalid_utf8_closes_session(engine) -> None:
    """A POST body that is not UTF-8 answers 400 and closes the session."""
    h = await engine()
    sid, _ = await h.handshake()
    response = await h.post(sid, b"4\xff\xfe")
    assert response.status == 400
    assert h.closed == {sid: "parse error"}


async def test_post_close_packet_closes_session(engine) -> None:
    """A CLOSE packet from the client ends the session with "transport close"."""
    h = await engine()
    sid, _ = await h.handshake()
    response = await h.post(sid, "4bye\x1e1")
    assert response.status == 200
    assert h.messages[sid] == ["bye"]
    assert h.closed == {sid: "transport close"}
    response = await h.poll(sid)
    assert response.status == 400
    assert response.json()["code"] == 1


async def test_concurrent_gets_answer_400_and_close(engine) -> None:
    """A second GET while one is pending answers 400 and closes the session."""
    h = await engine()
    sid, _ = await h.handshake()
    first = asyncio.create_task(h.poll(sid))
    await asyncio.sleep(0.05)
    second = await h.poll(sid)
    assert second.status == 400
    assert sid in h.closed
    assert sid not in h.server.sessions
    released = await asyncio.wait_for(first, 3)
    assert released.status == 200
    assert released.body == b"1"  # the close packet
    later = await h.poll(sid)
    assert (later.status, later.json()["code"]) == (400, 1)


async def test_server_close_releases_poll_with_close_packet(engine) -> None:
    """session.close() answers a waiting GET with the CLOSE packet."""
    h = await engine()
    sid, _ = await h.handshake()
    poll = asyncio.create_task(h.poll(sid))
    await asyncio.sleep(0.05)
    h.sessions[sid].close("forced close")
    response = await asyncio.wait_for(poll, 3)
    assert (response.status, response.body) == (200, b"1")
    assert h.closed == {sid: "forced close"}


async def test_poll_connection_dropped_closes_session(engine, until) -> None:
    """A client that drops its pending GET's connection ends the session."""
    h = await engine()
    sid, _ = await h.handshake()
    _, writer = await asyncio.open_connection("127.0.0.1", h.port)
    writer.write(f"GET {h.path(sid=sid)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    await asyncio.sleep(0.05)
    assert sid not in h.closed
    writer.transport.abort()
    await until(lambda: sid in h.closed)
    assert sid not in h.server.sessions


async def test_send_after_close_is_ignored(engine) -> None:
    """Sending on a closed session does nothing and send_encoded reports False."""
    h = await engine()
    sid, _ = await h.handshake()
    session = h.sessions[sid]
    session.close()
    session.send_message("late")
    assert session.send_encoded(EncodedMessage(["4late"])) is False
    assert h.closed == {sid: "forced close"}


async def test_close_callback_called_once(engine) -> None:
    """close() is idempotent: on_close runs once with the first reason."""
    h = await engine()
    sid, _ = await h.handshake()
    reasons: list[str] = []
    h.sessions[sid].on_close = reasons.append
    h.sessions[sid].close("first")
    h.sessions[sid].close("second")
    assert reasons == ["first"]


# -- websocket -------------------------------------------------------------------------


async def test_websocket_messages_both_ways(engine) -> None:
    """Over websocket, text and binary messages flow both ways, one packet per frame."""
    h = await engine()
    ws, sid = await h.ws_open()
    await ws.send("4text")
    await ws.send(b"\x00\xff")
    session = h.sessions[sid]
    session.send_message("one")
    session.send(b"\x10\x20")
    assert await asyncio.wait_for(ws.recv(), 3) == "4one"
    assert await asyncio.wait_for(ws.recv(), 3) == b"\x10\x20"
    assert h.messages[sid] == ["text", b"\x00\xff"]
    await ws.close()


async def test_websocket_client_close_reason(engine, until) -> None:
    """A client closing its websocket ends the session with "transport close"."""
    h = await engine()
    ws, sid = await h.ws_open()
    await ws.close()
    await until(lambda: sid in h.closed)
    assert h.closed[sid] == "transport close"


async def test_websocket_invalid_packet_closes_session(engine, until) -> None:
    """An unknown Engine.IO packet type over websocket closes the session ("parse error")."""
    h = await engine()
    ws, sid = await h.ws_open()
    await ws.send("9what")
    await until(lambda: sid in h.closed)
    assert h.closed[sid] == "parse error"
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 3)


async def test_websocket_session_close_sends_pending_then_closes(engine) -> None:
    """close() writes what was queued in this iteration, then closes the websocket."""
    h = await engine()
    ws, sid = await h.ws_open()
    session = h.sessions[sid]
    session.send_message("last words")
    session.close("forced close")
    assert await asyncio.wait_for(ws.recv(), 3) == "4last words"
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 3)


# -- upgrade -------------------------------------------------------------------------------


async def test_upgrade_probe(engine, until) -> None:
    """2probe → 3probe; the pending GET gets a noop; after 5, messages flow on websocket."""
    h = await engine()
    sid, _ = await h.handshake()
    session = h.sessions[sid]
    poll = asyncio.create_task(h.poll(sid))
    await asyncio.sleep(0.05)
    assert not poll.done()
    ws = await h.ws_connect(sid=sid)
    assert session.is_upgrading()
    await ws.send("2probe")
    assert await asyncio.wait_for(ws.recv(), 3) == "3probe"
    released = await asyncio.wait_for(poll, 3)
    assert (released.status, released.body) == (200, b"6")
    assert session.transport == "polling"
    await ws.send("5")
    await until(lambda: session.transport == "websocket")
    assert not session.is_upgrading()
    session.send_message("over websocket")
    assert await asyncio.wait_for(ws.recv(), 3) == "4over websocket"
    await ws.send("4from client")
    await until(lambda: h.messages[sid] == ["from client"])
    later = await h.poll(sid)
    assert later.status == 400
    assert later.json() == {"code": 3, "message": "Bad request"}
    assert not session.closed
    await ws.close()


async def test_upgrade_flushes_packets_queued_during_probe(engine, until) -> None:
    """Packets sent while the upgrade is in progress arrive on the websocket after 5."""
    h = await engine()
    sid, _ = await h.handshake()
    session = h.sessions[sid]
    ws = await h.ws_connect(sid=sid)
    await ws.send("2probe")
    assert await asyncio.wait_for(ws.recv(), 3) == "3probe"
    session.send_message("queued 1")
    session.send(b"\x07")
    await ws.send("5")
    assert await asyncio.wait_for(ws.recv(), 3) == "4queued 1"
    assert await asyncio.wait_for(ws.recv(), 3) == b"\x07"
    assert session.transport == "websocket"
    await ws.close()


async def test_get_after_probe_gets_noop(engine) -> None:
    """A GET that arrives after the probe (and before 5) is answered with a noop at once."""
    h = await engine()
    sid, _ = await h.handshake()
    ws = await h.ws_connect(sid=sid)
    await ws.send("2probe")
    assert await asyncio.wait_for(ws.recv(), 3) == "3probe"
    response = await h.poll(sid, timeout=2)
    assert (response.status, response.body) == (200, b"6")
    await ws.close()


async def test_second_probe_during_upgrade_closed(engine, until) -> None:
    """While one websocket probe is in progress, another websocket for the session opens and is
    closed at once; the first probe still completes the upgrade."""
    h = await engine()
    sid, _ = await h.handshake()
    session = h.sessions[sid]
    ws = await h.ws_connect(sid=sid)
    extra = await h.ws_connect(sid=sid)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(extra.recv(), 3)
    assert session.is_upgrading()
    await ws.send("2probe")
    assert await asyncio.wait_for(ws.recv(), 3) == "3probe"
    await ws.send("5")
    await until(lambda: session.transport == "websocket")
    await ws.close()


async def test_websocket_after_upgrade_closed_session_untouched(engine, until) -> None:
    """After the upgrade, another websocket with the same sid opens (101) and is closed; the
    upgraded session keeps its websocket."""
    h = await engine()
    sid, _ = await h.handshake()
    session = h.sessions[sid]
    ws = await h.ws_connect(sid=sid)
    await ws.send("2probe")
    assert await asyncio.wait_for(ws.recv(), 3) == "3probe"
    await ws.send("5")
    await until(lambda: session.transport == "websocket")
    extra = await h.ws_connect(sid=sid)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(extra.recv(), 3)
    await ws.send("4hello")
    await until(lambda: h.messages[sid] == ["hello"])
    session.send_message("back")
    assert await asyncio.wait_for(ws.recv(), 3) == "4back"
    assert not session.closed and h.closed == {}
    await ws.close()


async def test_upgrade_timeout_closes_probe_keeps_session(engine, until) -> None:
    """A probe that never completes is closed after upgrade_timeout; polling carries on."""
    h = await engine(upgrade_timeout=0.2)
    sid, _ = await h.handshake()
    session = h.sessions[sid]
    ws = await h.ws_connect(sid=sid)
    await until(lambda: not session.is_upgrading(), timeout=3)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 3)
    assert not session.closed
    session.send_message("still polling")
    response = await h.poll(sid)
    assert response.body == b"4still polling"


async def test_bad_probe_message_ends_probe(engine, until) -> None:
    """Anything but 2probe / 5 on the probe websocket ends the probe, not the session."""
    h = await engine()
    sid, _ = await h.handshake()
    session = h.sessions[sid]
    ws = await h.ws_connect(sid=sid)
    await ws.send("4not a probe")
    await until(lambda: not session.is_upgrading())
    assert session.transport == "polling"
    assert not session.closed
    assert h.messages[sid] == []
    await ws.close()


async def test_upgrade_packet_before_probe_is_refused(engine, until) -> None:
    """An UPGRADE packet without a preceding probe does not switch the transport."""
    h = await engine()
    sid, _ = await h.handshake()
    session = h.sessions[sid]
    ws = await h.ws_connect(sid=sid)
    await ws.send("5")
    await until(lambda: not session.is_upgrading())
    assert session.transport == "polling"
    await ws.close()


# -- heartbeat --------------------------------------------------------------------------


async def test_heartbeat_ping_pong_keeps_session(engine) -> None:
    """The server pings every ping_interval; answering pongs keeps the session open."""
    h = await engine(ping_interval=0.1, ping_timeout=0.15)
    ws, sid = await h.ws_open()
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(4):
        assert await asyncio.wait_for(ws.recv(), 2) == "2"
        await ws.send("3")
    assert loop.time() - start >= 0.35  # four intervals of 0.1 s
    assert sid not in h.closed
    assert not h.sessions[sid].closed
    await ws.close()


async def test_heartbeat_without_pong_closes_with_ping_timeout(engine, until) -> None:
    """No pong within ping_timeout closes the session with "ping timeout"."""
    h = await engine(ping_interval=0.1, ping_timeout=0.1)
    ws, sid = await h.ws_open()
    assert await asyncio.wait_for(ws.recv(), 2) == "2"
    await until(lambda: sid in h.closed, timeout=2)
    assert h.closed[sid] == "ping timeout"
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 2)


async def test_heartbeat_over_polling(engine, until) -> None:
    """A polling client gets the ping in its GET and its pong by POST keeps it alive."""
    h = await engine(ping_interval=0.1, ping_timeout=0.2)
    sid, _ = await h.handshake()
    for _ in range(3):
        response = await h.poll(sid, timeout=2)
        assert response.body == b"2"
        assert (await h.post(sid, "3")).status == 200
    assert sid not in h.closed
    response = await h.poll(sid, timeout=2)
    assert response.body == b"2"
    await until(lambda: sid in h.closed, timeout=2)
    assert h.closed[sid] == "ping timeout"


# -- coalescing and output bounds -------------------------------------------------------


async def test_sends_in_one_iteration_are_one_write(engine, monkeypatch) -> None:
    """Several sends in one loop iteration reach the transport as one writelines call."""
    h = await engine()
    ws, sid = await h.ws_open()
    session = h.sessions[sid]
    transport = session.request.connection.transport
    calls: list[tuple[str, int]] = []
    real_write, real_writelines = transport.write, transport.writelines
    nested = False  # asyncio's writelines may call self.write: count only outer calls

    def write(data):
        if not nested:
            calls.append(("write", 1))
        real_write(data)

    def writelines(chunks):
        nonlocal nested
        chunks = list(chunks)
        calls.append(("writelines", len(chunks)))
        nested = True
        try:
            real_writelines(chunks)
        finally:
            nested = False

    monkeypatch.setattr(transport, "write", write)
    monkeypatch.setattr(transport, "writelines", writelines)
    shared = EncodedMessage(["4shared"])
    session.send_message("a")
    session.send(b"\x01")
    session.send_encoded(shared)
    session.send_encoded(EncodedMessage(["4b", b"\x02"]))
    session.send_message("c")
    assert calls == []  # nothing written yet: the flush runs at the end of the iteration
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert calls == [("writelines", 5)]  # one chunk per send (a message's frames are one)
    received = [await asyncio.wait_for(ws.recv(), 3) for _ in range(6)]
    assert received == ["4a", b"\x01", "4shared", "4b", b"\x02", "4c"]
    await ws.close()


async def test_single_send_is_one_write(engine, monkeypatch) -> None:
    """A lone send in an iteration is written once (no per-packet writes)."""
    h = await engine()
    ws, sid = await h.ws_open()
    session = h.sessions[sid]
    transport = session.request.connection.transport
    count = 0
    real_write, real_writelines = transport.write, transport.writelines
    nested = False  # asyncio's writelines may call self.write: count only outer calls

    def counting(real):
        def call(data):
            nonlocal count, nested
            if nested:
                real(data)
                return
            count += 1
            nested = True
            try:
                real(data)
            finally:
                nested = False

        return call

    monkeypatch.setattr(transport, "write", counting(real_write))
    monkeypatch.setattr(transport, "writelines", counting(real_writelines))
    session.send_message("x")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert count == 1
    assert await asyncio.wait_for(ws.recv(), 3) == "4x"
    await ws.close()


def _record_writes(transport, monkeypatch) -> list[bytes]:
    """The bytes of each outer write/writelines call on `transport` from now on, one item each."""
    writes: list[bytes] = []
    real_write, real_writelines = transport.write, transport.writelines
    nested = False  # asyncio's writelines may call self.write: record only outer calls

    def write(data):
        if not nested:
            writes.append(bytes(data))
        real_write(data)

    def writelines(chunks):
        nonlocal nested
        chunks = list(chunks)
        writes.append(b"".join(chunks))
        nested = True
        try:
            real_writelines(chunks)
        finally:
            nested = False

    monkeypatch.setattr(transport, "write", write)
    monkeypatch.setattr(transport, "writelines", writelines)
    return writes


async def test_send_encoded_alone_is_a_write_of_its_own(engine, monkeypatch) -> None:
    """send_encoded_alone writes what was queued before it first, then its message alone; what
    is sent after it shares the end-of-iteration write."""
    h = await engine()
    ws, sid = await h.ws_open()
    session = h.sessions[sid]
    writes = _record_writes(session.request.connection.transport, monkeypatch)
    session.send_message("before")
    session.send_encoded_alone(EncodedMessage(["4alone"]))
    session.send_message("after1")
    session.send_message("after2")
    assert writes == [b"\x81\x074before", b"\x81\x064alone"]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert writes[2:] == [b"\x81\x074after1\x81\x074after2"]
    received = [await asyncio.wait_for(ws.recv(), 3) for _ in range(4)]
    assert received == ["4before", "4alone", "4after1", "4after2"]
    await ws.close()


async def test_send_encoded_alone_over_polling_is_queued(engine) -> None:
    """Over long-polling send_encoded_alone queues like any send: one GET takes everything."""
    h = await engine()
    sid, _ = await h.handshake()
    session = h.sessions[sid]
    session.send_encoded_alone(EncodedMessage(["4alone"]))
    session.send_message("after")
    response = await h.poll(sid)
    assert (response.status, response.body) == (200, b"4alone\x1e4after")


async def test_coalesced_bytes_on_raw_socket(engine, raw_ws) -> None:
    """The frames of one iteration arrive on the socket back to back, exactly as framed."""
    h = await engine()
    client = await raw_ws(h.port, h.ws_url().split(str(h.port), 1)[1], rcvbuf=1 << 16)
    open_frame = await asyncio.wait_for(client.reader.readexactly(2), 3)
    assert open_frame[0] == 0x81
    body = await client.reader.readexactly(open_frame[1])
    sid = body.decode()[1:].split('"sid":"')[1].split('"')[0]
    session = h.sessions[sid]
    session.send_message("a")
    session.send(b"\x09")
    session.send_message("bc")
    expected = b"\x81\x024a" + b"\x82\x01\x09" + b"\x81\x034bc"
    assert await asyncio.wait_for(client.reader.readexactly(len(expected)), 3) == expected
    client.close()


async def test_volatile_dropped_above_volatile_buffer(engine) -> None:
    """A volatile send is dropped while more than volatile_buffer bytes are unsent."""
    h = await engine(volatile_buffer=1024, max_buffer=1 << 20)
    ws, sid = await h.ws_open()
    session = h.sessions[sid]
    assert session.send_encoded(EncodedMessage(["4" + "x" * 4000])) is True
    assert session.send_encoded(EncodedMessage(["4dropped"]), volatile=True) is False
    assert len(await asyncio.wait_for(ws.recv(), 3)) == 4001
    await asyncio.sleep(0.05)  # the kernel has taken everything
    assert session.send_encoded(EncodedMessage(["4kept"]), volatile=True) is True
    assert await asyncio.wait_for(ws.recv(), 3) == "4kept"
    await ws.close()


async def test_volatile_over_polling_needs_waiting_get(engine) -> None:
    """Over polling, a volatile message is sent only if a GET is waiting for it."""
    h = await engine()
    sid, _ = await h.handshake()
    session = h.sessions[sid]
    assert session.send_encoded(EncodedMessage(["4gone"]), volatile=True) is False
    poll = asyncio.create_task(h.poll(sid))
    await asyncio.sleep(0.05)
    assert session.send_encoded(EncodedMessage(["4volatile"]), volatile=True) is True
    response = await asyncio.wait_for(poll, 3)
    assert response.body == b"4volatile"


# The slow-consumer bound of these tests: above the transport's high-water mark (256 KB), so
# that the cut-off point is the configured bound and not the mark.
SLOW_MAX_BUFFER = 512 * 1024
SLOW_CHUNK = "4" + "y" * 32 * 1024
SLOW_FLOOR = SLOW_MAX_BUFFER - 2 * len(SLOW_CHUNK)  # held at least this much before the cut


async def test_slow_consumer_cut_off_other_client_unaffected(engine, raw_ws, until) -> None:
    """A websocket client that never reads is cut off ("transport error") once more than
    max_buffer bytes are unsent, not before and not later; others go on."""
    h = await engine(max_buffer=SLOW_MAX_BUFFER, volatile_buffer=16 * 1024)
    target = h.ws_url().split(str(h.port), 1)[1]
    slow = await raw_ws(h.port, target, rcvbuf=4096)
    await until(lambda: len(h.sessions) == 1)
    (slow_sid,) = h.sessions
    transport = h.sessions[slow_sid].request.connection.transport
    fast, fast_sid = await h.ws_open()
    peak = 0  # the most bytes left unsent while the slow client was still connected
    for tick in range(2000):  # at most 64 MB: the kernel buffers fill long before that
        if slow_sid in h.closed:
            break
        peak = max(peak, transport.get_write_buffer_size())
        h.sessions[slow_sid].send(SLOW_CHUNK)
        h.sessions[fast_sid].send_message(f"tick {tick}")
        assert await asyncio.wait_for(fast.recv(), 3) == f"4tick {tick}"
    assert h.closed.get(slow_sid) == "transport error"
    # Cut off at the configured bound: it held up to it (less the last chunk), never above.
    assert SLOW_FLOOR < peak <= SLOW_MAX_BUFFER
    assert fast_sid not in h.closed
    h.sessions[fast_sid].send_message("still here")
    assert await asyncio.wait_for(fast.recv(), 3) == "4still here"
    await fast.send("4and back")
    await until(lambda: h.messages[fast_sid] == ["and back"])
    slow.close()
    await fast.close()


async def test_slow_consumer_cut_off_releases_its_buffer(engine, raw_ws, until) -> None:
    """A slow consumer is cut off at max_buffer unsent bytes, and those bytes are released
    (connection aborted)."""
    h = await engine(max_buffer=SLOW_MAX_BUFFER, volatile_buffer=16 * 1024)
    target = h.ws_url().split(str(h.port), 1)[1]
    slow = await raw_ws(h.port, target, rcvbuf=4096)
    await until(lambda: len(h.sessions) == 1)
    (sid,) = h.sessions
    session = h.sessions[sid]
    transport = session.request.connection.transport
    peak = 0
    for _ in range(2000):
        if sid in h.closed:
            break
        peak = max(peak, transport.get_write_buffer_size())
        session.send(SLOW_CHUNK)
        await asyncio.sleep(0)
    assert h.closed.get(sid) == "transport error"
    assert SLOW_FLOOR < peak <= SLOW_MAX_BUFFER
    await asyncio.sleep(0.1)
    try:
        assert transport.get_write_buffer_size() == 0
    finally:
        slow.close()


async def test_send_encoded_alone_cuts_off_slow_consumer(engine, raw_ws, until) -> None:
    """Messages sent alone to a client that never reads count towards max_buffer too: it is cut
    off once more is unsent, on the next turn of the loop (not inside the send)."""
    h = await engine(max_buffer=SLOW_MAX_BUFFER, volatile_buffer=16 * 1024)
    target = h.ws_url().split(str(h.port), 1)[1]
    slow = await raw_ws(h.port, target, rcvbuf=4096)
    await until(lambda: len(h.sessions) == 1)
    (sid,) = h.sessions
    session = h.sessions[sid]
    transport = session.request.connection.transport
    peak = 0
    try:
        for _ in range(2000):
            if sid in h.closed:
                break
            peak = max(peak, transport.get_write_buffer_size())
            session.send_encoded_alone(EncodedMessage([SLOW_CHUNK]))
            assert sid not in h.closed
            await asyncio.sleep(0)
        assert h.closed.get(sid) == "transport error"
        assert SLOW_FLOOR < peak <= SLOW_MAX_BUFFER
    finally:
        slow.close()


async def test_polling_queue_over_max_buffer_cut_off(engine) -> None:
    """A polling client that never fetches is cut off once its queue exceeds max_buffer."""
    h = await engine(max_buffer=10_000, volatile_buffer=1000)
    sid, _ = await h.handshake()
    session = h.sessions[sid]
    for _ in range(9):
        session.send_message("x" * 1000)
    assert sid not in h.closed
    session.send_message("x" * 2000)
    assert sid not in h.closed  # not inside the send: a broadcast may be walking its rooms
    await asyncio.sleep(0)
    assert h.closed == {sid: "transport error"}


async def test_post_larger_than_max_payload_is_413(engine) -> None:
    """A POST body larger than maxPayload is refused with 413 and delivers nothing."""
    h = await engine(max_payload=1000)
    sid, _ = await h.handshake()
    response = await h.post(sid, "4" + "x" * 1000)
    assert response.status == 413
    assert h.messages[sid] == []
    ok = await h.post(sid, "4" + "x" * 999)
    assert ok.status == 200
    assert h.messages[sid] == ["x" * 999]


async def test_websocket_message_larger_than_max_payload_closes(engine, until) -> None:
    """A websocket message larger than maxPayload closes the connection (1009)."""
    h = await engine(max_payload=1000)
    ws, sid = await h.ws_open()
    await ws.send("4" + "x" * 999)
    await until(lambda: h.messages[sid] == ["x" * 999])
    await ws.send("4" + "x" * 1000)
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), 3)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    await until(lambda: sid in h.closed)
    assert h.closed[sid] == "transport error"
    assert h.messages[sid] == ["x" * 999]


async def test_client_close_packet_releases_pending_get(engine) -> None:
    """A CLOSE packet POSTed while a GET is pending ends the session and answers that GET with a
    noop "to cleanly close HTTP long-polling transport"; the sid is then unknown (400)."""
    h = await engine()
    sid, _ = await h.handshake()
    poll = asyncio.create_task(h.poll(sid, timeout=2))
    await asyncio.sleep(0.05)
    assert (await h.post(sid, "1")).status == 200
    assert h.closed == {sid: "transport close"}
    response = await asyncio.wait_for(poll, 1)
    assert (response.status, response.body) == (200, b"6")  # noop: the client closed
    later = await h.poll(sid)
    assert (later.status, later.json()["code"]) == (400, 1)

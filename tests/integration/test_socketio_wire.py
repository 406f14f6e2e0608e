"""Socket.IO v5 packets on a raw websocket (and one over raw polling).

Each malformed input must close only the offending session: a bystander connected before
keeps working. The expectations for malformed input are what the Node.js reference server
does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.integration.itest_support import AppProcess
from tests.integration.itest_wire import Frame, Polling, RawWS, sio_decode

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def bystander(app: AppProcess) -> AsyncIterator[RawWS]:
    """A healthy client, connected to "/" before the test does anything."""
    ws = await RawWS.open(app)
    await ws.sio_connect()
    yield ws
    await ws.close()


@pytest.fixture
async def client(app: AppProcess) -> AsyncIterator[RawWS]:
    """A raw websocket Engine.IO session, not yet connected to any namespace."""
    ws = await RawWS.open(app)
    yield ws
    await ws.close()


async def _still_works(ws: RawWS, label: str = "ok") -> None:
    assert await ws.call("echo", label, ack_id=99) == [label]


# --- connection -----------------------------------------------------------------------------


async def test_connect_with_auth(client: RawWS) -> None:
    """CONNECT with an auth object is answered 40{"sid"}; the handler sees the auth payload."""
    await client.send('40{"token":"abc","n":1}')
    reply = await client.recv()
    assert isinstance(reply, str) and reply.startswith("40{")
    data = json.loads(reply[2:])
    assert isinstance(data["sid"], str) and data["sid"]
    assert set(data) <= {"sid", "pid"}
    [info] = await client.call("handshake_info")
    assert info["auth"] == {"token": "abc", "n": 1}
    assert info["id"] == data["sid"]
    assert info["transport"] == "websocket"


async def test_connect_without_auth(client: RawWS) -> None:
    """A bare CONNECT "40" works and the handler sees an empty auth object."""
    sid = await client.sio_connect()
    [info] = await client.call("handshake_info")
    assert info["auth"] == {}
    assert info["id"] == sid


async def test_namespace_ids_differ(client: RawWS) -> None:
    """Each namespace joined on one connection gets its own Socket.IO id, not the Engine.IO sid."""
    root = await client.sio_connect()
    admin = await client.sio_connect("/admin", {"token": "secret"})
    assert len({root, admin, client.handshake["sid"]}) == 3
    assert await client.call("whoami", nsp="/admin", ack_id=5) == [{"nsp": "/admin", "id": admin}]


# --- events and acks ------------------------------------------------------------------------


async def test_event_and_acks(client: RawWS) -> None:
    """EVENT with an ack id gets ACK with the same id; an emitted event comes back as EVENT."""
    await client.sio_connect()
    await client.send('42["echo_event","a",{"b":1}]')
    assert await client.recv() == '42["echo","a",{"b":1}]'
    await client.send('4217["echo",1,"two",null]')
    frame = await client.recv()
    assert sio_decode(frame) == ("3", "/", 17, [1, "two", None])
    await client.send(*(f'42{i}["echo",{i}]' for i in range(100, 110)))
    replies = [sio_decode(f) for f in await client.recv_many(10)]
    assert sorted((r[2], r[3]) for r in replies) == [(i, [i]) for i in range(100, 110)]


async def test_ack_without_arguments(client: RawWS) -> None:
    """A handler acking nothing is answered with an empty ACK array."""
    await client.sio_connect()
    assert await client.call("echo") == []


async def test_unknown_ack_id_is_ignored(client: RawWS) -> None:
    """An ACK for an id the server never sent is ignored; the session goes on."""
    await client.sio_connect()
    await client.send('43999["x"]')
    await _still_works(client)


async def test_server_emit_with_ack_over_wire(client: RawWS) -> None:
    """The server's emit-with-ack is an EVENT with an id; ACKing that id completes it."""
    await client.sio_connect()
    await client.send('421["server_ack",2000]')
    frame = await client.recv()
    kind, nsp, ack_id, data = sio_decode(frame)
    assert (kind, nsp, data) == ("2", "/", ["ping_me", {"n": 42}])
    assert ack_id is not None
    await client.send(f'43{ack_id}[{{"pong":true}}]')
    assert sio_decode(await client.recv()) == (
        "3",
        "/",
        1,
        [{"ok": True, "reply": {"pong": True}}],
    )


async def test_binary_ack_from_client(client: RawWS) -> None:
    """A BINARY_ACK from the client completes the server's emit-with-ack with the bytes."""
    await client.sio_connect()
    await client.send('421["server_ack",2000]')
    kind, _, ack_id, data = sio_decode(await client.recv())
    assert (kind, data) == ("2", ["ping_me", {"n": 42}])
    await client.send(f'461-{ack_id}[{{"_placeholder":true,"num":0}}]', b"\x01\x02")
    head, attachment = await client.recv_many(2)
    assert isinstance(head, str) and head.startswith("461-1[")
    assert json.loads(head[len("461-1") :]) == [
        {"ok": True, "reply": {"_placeholder": True, "num": 0}}
    ]
    assert attachment == b"\x01\x02"


async def test_binary_event_with_attachments(client: RawWS) -> None:
    """BINARY_EVENT with placeholders and attachment frames is acked as BINARY_ACK with frames."""
    await client.sio_connect()
    await client.send(
        '452-7["binary",{"_placeholder":true,"num":0},{"k":{"_placeholder":true,"num":1}}]',
        b"\x01\x02",
        b"\x03",
    )
    head, first, second = await client.recv_many(3)
    assert isinstance(head, str) and head.startswith("462-7[")
    assert json.loads(head[len("462-7") :]) == [
        {"_placeholder": True, "num": 0},
        {"k": {"_placeholder": True, "num": 1}},
    ]
    assert (first, second) == (b"\x01\x02", b"\x03")
    await client.send('451-["echo_event",{"_placeholder":true,"num":0}]', b"\xff\x00")
    head, attachment = await client.recv_many(2)
    assert head == '451-["echo",{"_placeholder":true,"num":0}]'
    assert attachment == b"\xff\x00"


# --- namespaces -----------------------------------------------------------------------------


async def test_admin_namespace(client: RawWS) -> None:
    """CONNECT to /admin with the right token is answered 40/admin,{"sid"}; events carry the nsp."""
    sid = await client.sio_connect("/admin", {"token": "secret"})
    await client.send('42/admin,5["whoami"]')
    assert sio_decode(await client.recv()) == ("3", "/admin", 5, [{"nsp": "/admin", "id": sid}])


async def test_unknown_namespace(client: RawWS) -> None:
    """CONNECT to an unknown namespace gets 44/x,{"message":"Invalid namespace"}; the connection
    stays."""
    await client.send("40/x,")
    frame = await client.recv()
    assert isinstance(frame, str) and frame.startswith("44/x,")
    assert json.loads(frame[len("44/x,") :]) == {"message": "Invalid namespace"}
    await client.sio_connect()
    await _still_works(client)


async def test_middleware_refusal(client: RawWS) -> None:
    """A refusing middleware answers CONNECT_ERROR with message and data; the connection stays."""
    await client.send('40/admin,{"token":"nope"}')
    frame = await client.recv()
    assert isinstance(frame, str) and frame.startswith("44/admin,")
    assert json.loads(frame[len("44/admin,") :]) == {
        "message": "unauthorized",
        "data": {"reason": "bad token"},
    }
    sid = await client.sio_connect("/admin", {"token": "secret"})
    assert sid
    await client.sio_connect()
    await _still_works(client)


async def test_client_disconnect_packet(client: RawWS, bystander: RawWS) -> None:
    """DISCONNECT from the client leaves the namespace ("client namespace disconnect") and keeps
    the connection, on which the client can CONNECT again."""
    first = await client.sio_connect()
    await client.send("41")
    reason = None
    for _ in range(40):
        [log] = await bystander.call("disconnect_log")
        reason = next((e["reason"] for e in log if e["id"] == first), None)
        if reason:
            break
        await asyncio.sleep(0.05)
    assert reason == "client namespace disconnect"
    second = await client.sio_connect()
    assert second != first
    await _still_works(client)


async def test_server_disconnect_packet(client: RawWS) -> None:
    """A server-side disconnect() sends DISCONNECT for the namespace and keeps the connection."""
    await client.sio_connect()
    admin = await client.sio_connect("/admin", {"token": "secret"})
    await client.send('42["disconnect_me"]')
    assert await client.recv() == "41"
    assert await client.call("whoami", nsp="/admin", ack_id=3) == [{"nsp": "/admin", "id": admin}]
    await client.sio_connect()
    await _still_works(client)


async def test_drop_transport_closes_connection(client: RawWS, bystander: RawWS) -> None:
    """Closing the Engine.IO connection server-side closes the websocket."""
    await client.sio_connect()
    await client.send('42["drop_transport"]')
    assert await client.closed(timeout=3)
    await _still_works(bystander)


async def test_crash_in_handler_keeps_connection(client: RawWS) -> None:
    """A handler that raises does not close the connection."""
    await client.sio_connect()
    await client.send('42["crash"]', '42["crash",1,{"a":2}]')
    await _still_works(client)


# --- malformed input: closes only the offender ---------------------------------------------

MALFORMED: dict[str, list[Frame]] = {
    "unknown-socketio-type": ['47["x"]'],
    "unknown-socketio-type-9": ["49"],
    "bad-json": ['42["echo"'],
    "bad-ack-id-on-event": ['42abc["echo"]'],
    "bad-ack-id-on-ack": ['43x["a"]'],
    "ack-payload-not-array": ['431{"a":1}'],
    "event-payload-object": ['42{"a":1}'],
    "event-payload-string": ['42"echo"'],
    "event-empty-array": ["42[]"],
    "event-name-null": ["42[null]"],
    "event-name-object": ['42[{"a":1}]'],
    "event-name-reserved": ['42["disconnect"]'],
    "fewer-attachments-then-text": [
        '452-["binary",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        b"\x01",
        '421["echo",1]',
    ],
    "attachment-without-binary-packet": [b"\x01\x02"],
    "placeholder-out-of-range": ['451-["binary",{"_placeholder":true,"num":5}]', b"\x01"],
    "zero-attachments": ['450-["binary"]'],
    "attachment-count-not-a-number": ['45x-["binary"]'],
    "connect-twice": ["40"],
    "event-to-unjoined-namespace": ['42/admin,["whoami"]'],
    "disconnect-unjoined-namespace": ["41/admin,"],
    "connect-payload-not-object": ['40/admin,"token"'],
    "connect-error-from-client": ['44{"message":"x"}'],
    "engineio-unknown-type": ["9"],
    "engineio-ping-from-client": ["2"],
    "engineio-empty-message": [""],
}


@pytest.mark.parametrize("frames", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_malformed_input_closes_only_offender(
    client: RawWS, bystander: RawWS, frames: list[Frame]
) -> None:
    """Malformed input closes the offending connection; other clients keep working."""
    await client.sio_connect()
    await client.send(*frames)
    assert await client.closed(timeout=3)
    await _still_works(bystander)
    await _still_works(bystander, "again")


async def test_malformed_over_polling_closes_session(app: AppProcess, bystander: RawWS) -> None:
    """Malformed input POSTed over polling ends that session (close packet, then unknown sid)."""
    async with aiohttp.ClientSession() as session:
        poll = Polling(session, app)
        await poll.open()
        await poll.sio_connect()
        resp = await poll.post('42["echo"')
        assert resp.status in (200, 400)
        assert await poll.closed(timeout=3)
        resp = await poll.get()
        assert resp.status == 400
        assert resp.json() == {"code": 1, "message": "Session ID unknown"}
    await _still_works(bystander)


# --- connect timeout ------------------------------------------------------------------------


@pytest.mark.app_env(CONNECT_TIMEOUT_MS=500)
async def test_no_connect_within_connect_timeout(client: RawWS, bystander: RawWS) -> None:
    """An Engine.IO session that joins no namespace within connectTimeout is closed."""
    started = time.monotonic()
    assert await client.closed(timeout=3)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0
    await _still_works(bystander)


@pytest.mark.app_env(CONNECT_TIMEOUT_MS=500)
async def test_connect_in_time_survives_connect_timeout(client: RawWS) -> None:
    """A session that joined a namespace in time is not closed by connectTimeout."""
    await client.sio_connect()
    assert await client.quiet(1.0) == []
    await _still_works(client)

"""The jwt_auth middleware (salas.auth.middleware) on a real Server: tokens from the auth
payload or the Authorization header, the exact CONNECT_ERROR of each refusal, claims on the
socket, disconnection at exp."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

import orjson
import pytest

from salas.auth import claims_of, mint_token, token_from_handshake
from tests.auth.auth_support import OTHER_SECRET, SECRET, forge, fresh, hs

pytestmark = pytest.mark.timeout(30)


def unauthorized(reason: str) -> str:
    """The CONNECT_ERROR packet a refused client gets, as it is on the wire."""
    payload = {"message": "unauthorized", "data": {"code": "unauthorized", "reason": reason}}
    return "44" + orjson.dumps(payload).decode()


async def until(predicate: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------------ where the token is
def test_token_from_handshake() -> None:
    """auth.token wins; a null one falls back to a Bearer header; other schemes are none."""
    bearer = {"authorization": "bearer  abc "}
    assert token_from_handshake({"auth": {"token": "t"}, "headers": bearer}) == "t"
    assert token_from_handshake({"auth": {"token": None}, "headers": bearer}) == "abc"
    assert token_from_handshake({"auth": {"token": 5}, "headers": {}}) == 5
    assert token_from_handshake({"auth": {}, "headers": {"authorization": "Basic eDp5"}}) is None
    assert token_from_handshake({"auth": {}, "headers": {}}) is None


async def test_token_in_auth_is_accepted(auth_server, sio_client) -> None:
    """connect(auth={"token"}) is admitted; socket.data["user"] holds the claims as a dict."""
    server = await auth_server()
    token = mint_token(SECRET, "alice", name="Alice", rooms=["ops"], role="moderator", ttl=600)
    client = sio_client()
    await client.connect(server.url, auth={"token": token}, transports=["websocket"])
    await until(lambda: len(server.sockets) == 1)
    user = server.sockets[0].data["user"]
    assert user == {
        "sub": "alice",
        "name": "Alice",
        "rooms": ["ops"],
        "role": "moderator",
        "exp": user["exp"],
    }
    assert isinstance(user["exp"], float) and user["exp"] > time.time() + 590
    assert orjson.loads(orjson.dumps(user)) == user
    claims = claims_of(server.sockets[0])
    assert claims is not None and claims.is_moderator


async def test_authorization_header_is_accepted(auth_server, sio_client) -> None:
    """A client that cannot send auth presents `Authorization: Bearer` on the handshake."""
    server = await auth_server()
    client = sio_client()
    token = hs(fresh(name="Bob", sub="bob"))
    await client.connect(server.url, headers={"Authorization": f"Bearer {token}"})
    await until(lambda: len(server.sockets) == 1)
    assert server.sockets[0].data["user"]["sub"] == "bob"


@pytest.mark.parametrize(
    ("auth", "reason"),
    [
        (None, "missing token"),
        ({}, "missing token"),
        ({"token": "not-a-jwt"}, "malformed"),
        ({"token": 12}, "malformed"),
        ({"token": "x" * 9000}, "too large"),
        ({"token": hs(fresh(), OTHER_SECRET)}, "bad signature"),
        ({"token": hs({"sub": "alice", "exp": int(time.time()) - 3600})}, "expired"),
        ({"token": hs({"name": "nobody", "exp": int(time.time()) + 60})}, "missing sub"),
        ({"token": hs(fresh(role="root"))}, "bad role"),
        ({"token": forge({"alg": "none"}, fresh(), None)}, "algorithm not allowed"),
    ],
)
async def test_refusals_on_the_wire(auth_server, raw, auth, reason) -> None:
    """Each bad or missing token gets exactly the unauthorized CONNECT_ERROR, with its reason."""
    server = await auth_server()
    assert await raw(server.port, auth) == unauthorized(reason)
    assert server.sockets == []


async def test_wrong_audience_and_bad_header_on_the_wire(auth_server, raw) -> None:
    """A token for another audience, or a bad Bearer header, is refused with its reason."""
    server = await auth_server(audience="salas")
    assert await raw(server.port, {"token": hs(fresh(aud="billing"))}) == unauthorized(
        "wrong audience"
    )
    headers = {"Authorization": "Bearer garbage"}
    assert await raw(server.port, None, headers) == unauthorized("malformed")
    ok = await raw(server.port, {"token": hs(fresh(aud="salas"))})
    assert ok.startswith('40{"sid":')


async def test_python_client_sees_the_refusal(auth_server, sio_client) -> None:
    """python-socketio's connect fails, and its connect_error gets the unauthorized data."""
    import socketio

    server = await auth_server()
    client = sio_client()
    errors: list[Any] = []
    client.on("connect_error", errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url, auth={"token": "bad"}, transports=["websocket"])
    assert errors and "unauthorized" in str(errors[0]) and "malformed" in str(errors[0])


async def test_honest_client_beside_refused_ones(auth_server, raw, sio_client) -> None:
    """Refused connections around it do not stop a client with a good token."""
    server = await auth_server()
    refusals = await asyncio.gather(*(raw(server.port, {"token": f"bad{i}"}) for i in range(10)))
    client = sio_client()
    await client.connect(server.url, auth={"token": hs(fresh())}, transports=["websocket"])
    refusals += await asyncio.gather(*(raw(server.port, {}) for _ in range(5)))
    assert refusals.count(unauthorized("malformed")) == 10
    assert refusals.count(unauthorized("missing token")) == 5
    received: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    client.on("pong", received.set_result)
    await until(lambda: len(server.sockets) == 1)
    await server.sockets[0].emit("pong", "still here")
    assert await asyncio.wait_for(received, 3) == "still here"


# ------------------------------------------------------------------------ expiry
async def test_disconnected_at_exp(auth_server, sio_client, caplog) -> None:
    """A socket whose token expires is disconnected then (leeway 0), logged with its sub."""
    server = await auth_server(leeway=0)
    client = sio_client()
    gone: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    client.on("disconnect", lambda *reason: gone.done() or gone.set_result(reason))
    exp = time.time() + 1.0
    with caplog.at_level(logging.INFO, logger="salas.auth"):
        await client.connect(
            server.url, auth={"token": hs({"sub": "carol", "exp": exp})}, transports=["websocket"]
        )
        assert server.auth.pending == 1
        await asyncio.wait_for(gone, 5)
    assert time.time() >= exp - 0.05
    assert not server.sockets[0].connected
    assert any("carol" in r.getMessage() and "expired" in r.getMessage() for r in caplog.records)
    assert server.auth.pending == 0


async def test_expiry_counts_the_leeway(auth_server, sio_client) -> None:
    """With a leeway, the socket stays until exp + leeway, when the token stops passing."""
    server = await auth_server(leeway=1)
    client = sio_client()
    exp = time.time() + 0.3
    await client.connect(
        server.url, auth={"token": hs({"sub": "dave", "exp": exp})}, transports=["websocket"]
    )
    await asyncio.sleep(0.6)
    assert client.connected
    await until(lambda: not client.connected, timeout=3)
    assert time.time() >= exp + 1 - 0.05


async def test_expiry_timer_goes_with_the_socket(auth_server, sio_client) -> None:
    """A socket that disconnects first leaves no expiry timer once it is released."""
    server = await auth_server()
    client = sio_client()
    await client.connect(server.url, auth={"token": hs(fresh())}, transports=["websocket"])
    await until(lambda: len(server.sockets) == 1)
    assert server.auth.pending == 1
    await client.disconnect()
    await until(lambda: not server.sockets[0].connected)
    server.sockets.clear()
    gc.collect()
    assert server.auth.pending == 0


async def test_release_and_watch(auth_server, sio_client) -> None:
    """release cancels a socket's timer; watch re-arms it from socket.data["user"]."""
    server = await auth_server(leeway=0)
    client = sio_client()
    await client.connect(server.url, auth={"token": hs(fresh())}, transports=["websocket"])
    await until(lambda: len(server.sockets) == 1)
    socket = server.sockets[0]
    server.auth.release(socket)
    assert server.auth.pending == 0
    socket.data["user"]["exp"] = time.time() - 1  # as a recovered session whose token ran out
    server.auth.watch(socket)
    await until(lambda: not client.connected)


async def test_token_without_exp_has_no_timer(auth_server, sio_client) -> None:
    """A token without exp is admitted and never scheduled for disconnection."""
    server = await auth_server()
    client = sio_client()
    await client.connect(server.url, auth={"token": hs({"sub": "eve"})}, transports=["websocket"])
    await until(lambda: len(server.sockets) == 1)
    assert server.auth.pending == 0 and client.connected

"""Namespace.on_event: client event handlers shared by every socket of a namespace."""

from __future__ import annotations

import asyncio

import pytest

from salas import Socket


async def test_shared_handler_gets_the_socket_and_answers(make_server, start, client) -> None:
    """One handler serves every socket: it gets the socket the event came from, then the
    event's arguments, and its return value is that socket's ack."""
    io = make_server()
    sockets: list[Socket] = []
    io.on("connection", sockets.append)

    @io.on_event("whoami")
    async def whoami(socket: Socket, n: int) -> tuple[str, int]:
        await asyncio.sleep(0)
        return socket.id, n + 1

    port = await start(io)
    first = await client(port)
    second = await client(port)
    await second.send('27["whoami",41]')
    await first.send('23["whoami",1]')
    assert await first.recv() == f'433["{sockets[0].id}",2]'
    assert await second.recv() == f'437["{sockets[1].id}",42]'


async def test_socket_on_takes_the_place_of_the_shared_handler(make_server, start, client) -> None:
    """A socket's own handler (socket.on) runs instead of the namespace's, for that socket
    only; a sync shared handler answers as well."""
    io = make_server()
    sockets: list[Socket] = []
    io.on("connection", sockets.append)
    io.on_event("ev", lambda socket, x: f"shared {x}")
    port = await start(io)
    first = await client(port)
    second = await client(port)
    sockets[0].on("ev", lambda x: f"own {x}")
    await first.send('21["ev","a"]')
    await second.send('21["ev","b"]')
    assert await first.recv() == '431["own a"]'
    assert await second.recv() == '431["shared b"]'


async def test_shared_disconnect_handlers_get_socket_and_reason(
    make_server, start, client, until
) -> None:
    """`disconnecting` (still in its rooms) and `disconnect` handlers of the namespace get
    (socket, reason)."""
    io = make_server()
    sockets: list[Socket] = []
    io.on("connection", sockets.append)
    seen: list[tuple[str, Socket, object]] = []
    io.on_event("disconnecting", lambda s, reason: seen.append(("disconnecting", s, s.rooms)))
    io.on_event("disconnect", lambda s, reason: seen.append(("disconnect", s, reason)))
    port = await start(io)
    raw = await client(port)
    socket = sockets[0]
    await socket.join("room")
    await raw.close()
    await until(lambda: len(seen) == 2)
    assert seen == [
        ("disconnecting", socket, {socket.id, "room"}),
        ("disconnect", socket, "transport close"),
    ]


async def test_shared_handlers_are_per_namespace(make_server, start, client) -> None:
    """A handler of /admin does not answer the main namespace's sockets."""
    io = make_server()
    io.of("/admin").on_event("ping", lambda socket: "admin")
    port = await start(io)
    main = await client(port)
    admin = await client(port, nsp="/admin")
    await main.send('25["ping"]')
    await admin.send('2/admin,5["ping"]')
    assert await admin.recv() == '43/admin,5["admin"]'
    await main.nothing()


async def test_client_cannot_fire_shared_reserved_handlers(
    make_server, start, client, until
) -> None:
    """A client sending events named "disconnect"/"disconnecting" does not run the shared
    handlers of those names; an honest client beside it is answered as usual."""
    io = make_server()
    called: list[object] = []
    io.on_event("disconnect", lambda socket, reason: called.append(reason))
    io.on_event("disconnecting", lambda socket, reason: called.append(reason))
    io.on_event("echo", lambda socket, x: x)
    port = await start(io)
    hostile = await client(port)
    honest = await client(port)
    await hostile.send('2["disconnect","spoofed"]')
    await hostile.send('2["disconnecting","spoofed"]')
    await honest.send('29["echo","hi"]')
    assert await honest.recv() == '439["hi"]'
    await hostile.closed()  # a reserved event name is a broken client's packet
    await until(lambda: called)
    assert called == ["parse error", "parse error"]  # its real disconnection
    assert "spoofed" not in called


def test_on_event_refuses_connection_and_non_strings(make_server) -> None:
    """The namespace's own event is registered with on(), not on_event; names are strings."""
    io = make_server()
    for name in ("connection", "connect"):
        with pytest.raises(ValueError, match="on\\(\\)"):
            io.on_event(name, lambda socket: None)
    with pytest.raises(TypeError):
        io.of("/x").on_event(42, lambda socket: None)  # type: ignore[arg-type]
    assert io.sockets.event_handlers == {}


async def test_socket_without_handlers_of_its_own_keeps_no_table(
    make_server, start, client
) -> None:
    """Sockets served by shared handlers only share one empty handler table: none is made
    per socket (memory per idle connection); `socket.on` makes the socket's own, and the
    shared one stays empty."""
    io = make_server()
    sockets: list[Socket] = []
    io.on("connection", sockets.append)
    io.on_event("ev", lambda socket: "shared")
    port = await start(io)
    await client(port)
    await client(port)
    first, second = sockets
    assert first._handlers is second._handlers
    first.on("ev", lambda: "own")
    assert first._handlers is not second._handlers
    assert second._handlers == {}

"""salas.client: python-socketio's ``AsyncClient`` with connection state recovery.

A plain ``socketio.AsyncClient`` works with salas as it is: its handlers get exactly the
arguments of each event (the server adds no offset for it). :class:`AsyncClient` adds what
the official JS client does with recovery: it remembers, per namespace, the private id
(``pid``) the server gave it and the offset of the last broadcast it received, presents
both when it reconnects, and gets back the same socket id, rooms and ``data``, then every
broadcast it missed, exactly once and in order. Its handlers are ordinary ones too: the
offset argument is taken off before they are called.

>>> from salas.client import AsyncClient
>>> sio = AsyncClient()
>>> @sio.on("message")
... async def on_message(data): ...

It asks the server for *tagged* offsets in its CONNECT auth (``{"offsets": "tagged"}``):
every event then ends with an offset argument, ``""`` when it has none, so that an event's
own last argument is never taken for an offset. Needs the ``client`` extra
(``pip install "salas[client]"``).
"""

from __future__ import annotations

from typing import Any

from salas._extras import extra_needed

try:
    import socketio
    from socketio import packet as sio_packet
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(extra_needed("salas.client", "client")) from exc

__all__ = ["AsyncClient"]


class AsyncClient(socketio.AsyncClient):  # type: ignore[misc]  # python-socketio is untyped
    """A ``socketio.AsyncClient`` that recovers its sessions on a salas server.

    Takes the same arguments as ``socketio.AsyncClient``; ``connect``'s ``auth`` (a dict,
    or a callable returning one) is sent with the recovery fields added.

    Attributes:
        pids: Per namespace, the private id the server gave its session (absent when the
            server has recovery off).
        offsets: Per namespace, the offset of the last broadcast received.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pids: dict[str, str] = {}
        self.offsets: dict[str, str] = {}
        self._recovered: dict[str, bool] = {}

    @property
    def recovered(self) -> bool:
        """Whether the latest connection of the main namespace ``/`` recovered its session."""
        return self.recovered_in("/")

    def recovered_in(self, namespace: str) -> bool:
        """Whether the latest connection of ``namespace`` recovered its session.

        Args:
            namespace: The namespace's name, such as ``"/chat"``.
        """
        return self._recovered.get(namespace, False)

    # The hooks below are python-socketio's own steps (5.x): the CONNECT packet going out,
    # the server's CONNECT reply, and each EVENT coming in.
    async def _send_packet(self, pkt: Any) -> None:
        if pkt.packet_type == sio_packet.CONNECT:
            namespace = pkt.namespace or "/"
            auth = dict(pkt.data) if isinstance(pkt.data, dict) else {}
            auth["offsets"] = "tagged"
            pid = self.pids.get(namespace)
            if pid is not None:
                auth["pid"] = pid
                offset = self.offsets.get(namespace)
                if offset is not None:
                    auth["offset"] = offset
            pkt.data = auth
        await super()._send_packet(pkt)

    async def _handle_connect(self, namespace: str | None, data: Any) -> None:
        namespace = namespace or "/"
        pid = data.get("pid") if isinstance(data, dict) else None
        previous = self.pids.get(namespace)
        if isinstance(pid, str):
            self._recovered[namespace] = pid == previous
            if pid != previous:
                # A new session: offsets of the old one mean nothing to it.
                self.pids[namespace] = pid
                self.offsets.pop(namespace, None)
        else:
            # The server has recovery off: its events carry no offset.
            self._recovered[namespace] = False
            self.pids.pop(namespace, None)
            self.offsets.pop(namespace, None)
        await super()._handle_connect(namespace, data)

    async def _handle_event(self, namespace: str | None, id: int | None, data: Any) -> None:
        name = namespace or "/"
        if name in self.pids and isinstance(data, list) and len(data) > 1:
            offset = data[-1]
            if isinstance(offset, str):
                data = data[:-1]
                if offset:
                    self.offsets[name] = offset
        await super()._handle_event(namespace, id, data)

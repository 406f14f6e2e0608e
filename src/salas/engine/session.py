"""One Engine.IO session: its transport (long-polling or websocket), upgrade and heartbeat.

Outgoing packets are kept in websocket form. On websocket they are appended to `_out` (as
frames on salas' own server, as packets for a carrier that frames them itself: ASGI),
written at the end of the loop iteration by the flush scheduler; on long-polling they wait
in `_queue` until a GET takes them as one payload.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from salas.engine.budget import InboundBudget
from salas.engine.http import HttpRequest
from salas.engine.timers import TimerWheel
from salas.engine.transport import EngineSocket
from salas.engine.websocket import ignore_close, ignore_message
from salas.protocol import (
    PacketType,
    ProtocolError,
    WirePacket,
    decode_packet,
    decode_payload,
    encode_payload,
    text_frame,
)
from salas.protocol.outgoing import EncodedMessage
from salas.protocol.wsframe import binary_frame

if TYPE_CHECKING:
    from salas.engine.server import EngineServer

__all__ = ["EngineSession"]

logger = logging.getLogger("salas.engine")

_NOOP = b"6"
_SEPARATOR = b"\x1e"  # between the packets of a long-polling body


class EngineSession:
    """Server side of one Engine.IO connection."""

    __slots__ = (
        "__weakref__",
        "_budget",
        "_cut_off_pending",
        "_framed",
        "_heartbeat",
        "_heartbeat_token",
        "_out",
        "_poll",
        "_posting",
        "_probe",
        "_probe_ready",
        "_queue",
        "_queue_size",
        "_scheduled",
        "_scheduler",
        "_server",
        "_stats",
        "_upgrade_timer",
        "_ws",
        "closed",
        "flushed_at",
        "on_close",
        "on_message",
        "request",
        "sid",
        "transport",
    )

    def __init__(self, server: EngineServer, sid: str, request: HttpRequest) -> None:
        self._server = server
        self.sid = sid
        self.request = request  # the handshake request (headers, query, address)
        self.transport = "polling"
        self.closed = False
        self.on_message: Callable[[str | bytes], None] = ignore_message
        self.on_close: Callable[[str], None] = ignore_close
        self._ws: EngineSocket | None = None
        # Websocket chunks queued this loop iteration: frames (bytes) when `_framed`, else
        # Engine.IO packets (see salas.engine.transport).
        self._out: list[Any] = []
        self._framed = True
        self._scheduler = server.scheduler
        self._stats = server.stats
        # Packets waiting for a long-polling GET: the shared empty tuple while there are
        # none (always, on a websocket), a list made by the first one.
        self._queue: list[WirePacket] | tuple[()] = ()
        self._queue_size = 0
        self._poll: HttpRequest | None = None
        self._posting: HttpRequest | None = None  # a POST whose body is still arriving
        self._scheduled = False
        # Loop time of the latest paced websocket write (salas.engine.scheduler); -inf: none,
        # and always for long-polling, whose answers are not paced.
        self.flushed_at = float("-inf")
        self._probe: EngineSocket | None = None
        self._probe_ready = False
        self._cut_off_pending = False
        self._upgrade_timer: asyncio.TimerHandle | None = None
        # The heartbeat wheel this session waits in (EngineServer.heartbeats), and its token.
        self._heartbeat: TimerWheel[EngineSession] | None = None
        self._heartbeat_token = 0
        config = server.config
        self._budget = (
            InboundBudget(
                config.inbound_rate,
                config.inbound_burst,
                config.inbound_bytes_rate,
                config.max_payload,
                config.inbound_grace,
            )
            if config.inbound_rate or config.inbound_bytes_rate
            else None
        )

    # -- sending ----------------------------------------------------------------------
    def send(self, packet: WirePacket) -> None:
        """Queue one Engine.IO packet in websocket form ("4hello", "2", or bytes)."""
        if self.closed:
            return
        ws = self._ws
        if ws is not None:
            if self._framed:
                frame = text_frame(packet) if isinstance(packet, str) else binary_frame(packet)
                self._push_frames(frame)
            else:
                self._push_packets([packet])
        else:
            self._enqueue((packet,))

    def send_message(self, text: str) -> None:
        """Queue one Engine.IO MESSAGE carrying `text`."""
        self.send("4" + text)

    def send_encoded(self, message: EncodedMessage, volatile: bool = False) -> bool:
        """Queue a pre-encoded message; False if dropped (volatile, connection congested).

        This is the per-recipient step of every broadcast: on an open websocket it is one
        list append (plus registering with the flush scheduler once per iteration).
        """
        ws = self._ws
        if ws is not None and not volatile:
            if not self._scheduled:
                self._scheduled = True
                self._scheduler.add(self)
            if self._framed:
                self._out.append(message.frames)
            else:
                # The same packet objects for every recipient: only the carrier's send is
                # per recipient.
                self._out.extend(message.packets)
            return True
        return self._send_encoded_slow(message, volatile)

    def send_encoded_alone(self, message: EncodedMessage) -> None:
        """Send a pre-encoded message in a write of its own, ahead of what is sent after it.

        For the replies a client may read one websocket message per read for (a Socket.IO
        CONNECT reply): Node's `ws` client hands over every frame of one read at once, so a
        client that awaits the next message after each one misses those that shared a write
        with it. What was queued earlier in this iteration is written first, in order; what
        is sent after goes out with the end-of-iteration flush, as always. Long-polling is
        unchanged (a payload carries several packets).
        """
        ws = self._ws
        if ws is None:
            self._send_encoded_slow(message, False)
            return
        if not self._framed:
            # A carrier of packets (ASGI): it sends each as a message of its own anyway.
            self.send_encoded(message)
            return
        out = self._out
        if out:
            ws.writelines(out)
            out.clear()
        ws.write(message.frames)
        if (
            ws.congested
            and ws.buffered() > self._server.config.max_buffer
            and not self._cut_off_pending
        ):
            # A slow consumer, cut off as `flush` would, but later (as in `_poll_wanted`):
            # the caller may still be setting up the connection.
            self._cut_off_pending = True
            self._server.loop.call_soon(self._cut_off)

    def _send_encoded_slow(self, message: EncodedMessage, volatile: bool) -> bool:
        if self.closed:
            return False
        ws = self._ws
        if ws is not None:
            unsent = ws.buffered() + sum(len(chunk) for chunk in self._out)
            if unsent > self._server.config.volatile_buffer:
                return False
            if self._framed:
                self._push_frames(message.frames)
            else:
                self._push_packets(message.packets)
            return True
        if volatile and (self._poll is None or self._queue):
            # Polling: a volatile packet is only worth sending if a GET is waiting now.
            return False
        self._enqueue(message.packets)
        return True

    def _enqueue(self, packets: Sequence[WirePacket]) -> None:
        """Queue packets for the next long-polling GET."""
        queue = self._queue
        if isinstance(queue, tuple):
            queue = self._queue = []
        queue.extend(packets)
        self._queue_size += sum(len(p) for p in packets)
        self._poll_wanted()

    def _push_frames(self, frames: bytes) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._scheduler.add(self)
        self._out.append(frames)

    def _push_packets(self, packets: list[WirePacket]) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._scheduler.add(self)
        self._out.extend(packets)

    def _poll_wanted(self) -> None:
        if self._queue_size > self._server.config.max_buffer:
            # Not now: this runs inside a broadcast's loop over a room's members, which
            # closing the session (and so leaving its rooms) would change under it.
            if not self._cut_off_pending:
                self._cut_off_pending = True
                self._server.loop.call_soon(self._cut_off)
            return
        if self._poll is not None and not self._scheduled:
            self._scheduled = True
            self._scheduler.add(self)

    def flush(self) -> None:
        """Write what this iteration queued (called once per iteration by the scheduler)."""
        self._scheduled = False
        ws = self._ws
        if ws is not None:
            out = self._out
            if not out:
                return
            # Counted per write, not per delivery: a write is a system call, next to which
            # two additions are noise.
            stats = self._stats
            if len(out) == 1:
                chunk = out[0]
                stats.packets_sent += 1
                stats.bytes_sent += len(chunk)
                ws.write(chunk)
            else:
                stats.packets_sent += len(out)
                stats.bytes_sent += sum(map(len, out))
                ws.writelines(out)
            out.clear()  # reused: no new list per connection per iteration
            # The transport pauses writing above its high-water mark; only then can the
            # unsent bytes have grown past the bound.
            if ws.congested and ws.buffered() > self._server.config.max_buffer:
                self._cut_off()
        else:
            self.flushed_at = float("-inf")  # a poll's answer is never held back
            if self._poll is not None and self._queue:
                self._answer_poll()

    def _cut_off(self) -> None:
        self._stats.slow_consumers += 1
        logger.warning(
            "closing session %s: slow consumer, more than %d bytes unsent",
            self.sid,
            self._server.config.max_buffer,
        )
        self.close("transport error", abort=True)

    # -- long-polling -----------------------------------------------------------------
    def handle_poll(self, request: HttpRequest) -> None:
        """A GET: answer with what is queued, or hold it until something is."""
        if self._poll is not None:
            # Two GETs at once: the client is broken or hostile; the reference server
            # answers 400 and closes the session.
            request.respond(400, b"Bad Request", self._server.cors(request))
            self.close("transport error")
            return
        self._poll = request
        request.on_abort(self._on_poll_aborted)
        if self._queue:
            self._answer_poll()
        elif self._probe_ready or self.closed:
            self._release_poll()

    def begin_post(self, request: HttpRequest) -> bool:
        """A POST's head arrived; False if another POST of this session is still arriving."""
        posting = self._posting
        if (
            posting is not None
            and posting is not request
            and not posting.connection.gone
            and not posting.responded
        ):
            return False
        self._posting = request
        return True

    def handle_post(self, request: HttpRequest) -> None:
        """A POST: one or more packets from the client."""
        if self._posting is request:
            self._posting = None
        headers = self._server.cors(request)
        if request.headers.get("content-type", "").startswith("application/octet-stream"):
            # Engine.IO v4 payloads are text (binary travels base64-encoded); the reference
            # server refuses a binary body and ends the session.
            request.respond(400, b"", headers)
            self.close("transport error")
            return
        body = request.body
        # Counted before anything is decoded: a body of tens of thousands of tiny packets
        # would otherwise hold the event loop for as long as it takes to handle them all.
        count = body.count(_SEPARATOR) + 1
        stats = self._stats
        stats.packets_received += count
        stats.bytes_received += len(body)
        config = self._server.config
        if count > config.max_post_packets:
            self._server.inbound_stats.posts_refused += 1
            logger.warning(
                "closing session %s: a POST of %d packets (at most %d)",
                self.sid,
                count,
                config.max_post_packets,
            )
            request.respond(400, b"Bad Request", headers)
            self.close("transport error")
            return
        budget = self._budget
        if budget is not None and not budget.admit(count, len(body)):
            # Over budget: the packets are dropped, as they would be over websocket.
            request.respond(200, b"ok", headers, "text/html")
            self._over_budget(budget, count)
            return
        try:
            packets = decode_payload(body.decode())
        except (UnicodeDecodeError, ProtocolError):
            request.respond(400, b"Bad Request", headers)
            self.close("parse error")
            return
        request.respond(200, b"ok", headers, "text/html")
        for packet in packets:
            if self.closed:
                break
            self._on_packet(packet.type, packet.data)

    def _answer_poll(self) -> None:
        request = self._poll
        assert request is not None
        self._poll = None
        stats = self._stats
        stats.packets_sent += len(self._queue)
        body = encode_payload(self._queue).encode()
        stats.bytes_sent += len(body)
        self._queue = ()
        self._queue_size = 0
        request.respond(200, body, self._server.cors(request))

    def _release_poll(self) -> None:
        """Answer a waiting GET with the close packet once the server has closed the session,
        else with a noop (during an upgrade, or as the client's close packet ends it)."""
        request = self._poll
        if request is None:
            return
        self._poll = None
        request.respond(200, b"1" if self.closed else _NOOP, self._server.cors(request))

    def _on_poll_aborted(self) -> None:
        self._poll = None
        if self.transport == "polling" and self._probe is None:
            self.close("transport close")

    # -- websocket ----------------------------------------------------------------------
    def attach_websocket(self, ws: EngineSocket) -> None:
        """Use `ws` from the start (a session opened directly over websocket)."""
        self.transport = "websocket"
        self._ws = ws
        self._framed = ws.framed
        ws.on_message = self._on_ws_message
        ws.on_close = self._on_ws_close

    def start_transport(self) -> None:
        """Read what arrived with a websocket handshake (once `on_message` is set)."""
        if self._ws is not None:
            self._ws.start()

    def probe_websocket(self, ws: EngineSocket) -> None:
        """Start upgrading this polling session to `ws` (probe, then UPGRADE packet)."""
        self._probe = ws
        ws.on_message = self._on_probe_message
        ws.on_close = self._on_probe_close
        loop = self._server.loop
        self._upgrade_timer = loop.call_later(self._server.config.upgrade_timeout, self._end_probe)

    def is_upgrading(self) -> bool:
        return self._probe is not None

    def _on_probe_message(self, message: str | bytes) -> None:
        ws = self._probe
        if ws is None:
            return
        if message == "2probe":
            ws.write(text_frame("3probe") if ws.framed else "3probe")
            # The client pauses polling before sending UPGRADE; it needs its pending GET
            # answered to get there.
            self._probe_ready = True
            self._release_poll()
        elif message == "5" and self._probe_ready:
            self._complete_upgrade(ws)
        else:
            self._end_probe()

    def _complete_upgrade(self, ws: EngineSocket) -> None:
        if self._upgrade_timer is not None:
            self._upgrade_timer.cancel()
            self._upgrade_timer = None
        self._probe = None
        self._probe_ready = False
        self._release_poll()
        self.attach_websocket(ws)
        queued = self._queue
        self._queue = ()
        self._queue_size = 0
        for packet in queued:
            self.send(packet)

    def _on_probe_close(self, reason: str) -> None:
        self._probe = None
        self._probe_ready = False

    def _end_probe(self) -> None:
        ws = self._probe
        self._probe = None
        self._probe_ready = False
        self._cut_off_pending = False
        self._upgrade_timer = None
        if ws is not None:
            ws.close()

    def _on_ws_message(self, message: str | bytes) -> None:
        # (Its bytes are counted as they are read, by the WebSocket.)
        self._stats.packets_received += 1
        budget = self._budget
        # (A text message's size is counted in characters: the frame is already UTF-8
        # decoded here, and the count only needs to be cheap and proportional.)
        if budget is not None and not budget.admit(1, len(message)):
            self._over_budget(budget, 1)
            return
        if type(message) is str and message[:1] == "4":
            # A MESSAGE, nearly every packet a client sends: no packet object to build.
            self.on_message(message[1:])
            return
        try:
            packet = decode_packet(message)
        except ProtocolError:
            self.close("parse error")
            return
        self._on_packet(packet.type, packet.data)

    def _on_ws_close(self, reason: str) -> None:
        self._ws = None
        self.close(reason)

    # -- packets from the client --------------------------------------------------------
    def _over_budget(self, budget: InboundBudget, dropped: int) -> None:
        """`dropped` packets were over the inbound budget; cut off a persistent sender."""
        stats = self._server.inbound_stats
        stats.packets_dropped += dropped
        if budget.exhausted() and not self.closed:
            stats.disconnects += 1
            config = self._server.config
            # Logged once: the session is closed right after, and refuses everything then.
            logger.warning(
                "closing session %s: over its inbound budget (%g packets/s, %g bytes/s) for %g s",
                self.sid,
                config.inbound_rate,
                config.inbound_bytes_rate,
                config.inbound_grace,
            )
            self.close("transport error")

    def _on_packet(self, packet_type: PacketType, data: str | bytes) -> None:
        if packet_type is PacketType.MESSAGE:
            self.on_message(data)
        elif packet_type is PacketType.PONG:
            self._schedule_ping()
        elif packet_type is PacketType.CLOSE:
            # The client closes its transport: a pending GET is answered with a noop, the
            # packet the spec uses "to cleanly close HTTP long-polling transport" (as Node
            # does; the close packet is for a session the server ends).
            self._release_poll()
            self.close("transport close")
        elif packet_type is PacketType.PING:
            # In Engine.IO v4 only the server pings; Node closes on a ping from the client.
            logger.info("closing session %s: ping from the client", self.sid)
            self.close("transport error")
        # NOOP, OPEN and UPGRADE from an established session carry nothing for us.

    # -- heartbeat --------------------------------------------------------------------
    def start_heartbeat(self) -> None:
        self._schedule_ping()

    def _schedule_ping(self) -> None:
        self._stop_heartbeat()
        if not self.closed:
            wheel = self._server.heartbeats[0]
            self._heartbeat = wheel
            self._heartbeat_token = wheel.add(self)

    def _stop_heartbeat(self) -> None:
        wheel = self._heartbeat
        if wheel is not None:
            self._heartbeat = None
            wheel.discard(self, self._heartbeat_token)

    def ping(self) -> None:
        """Send a ping and wait for its answer (called by the heartbeat wheel)."""
        self._heartbeat = None
        if self.closed:
            return
        self.send("2")
        wheel = self._server.heartbeats[1]
        self._heartbeat = wheel
        self._heartbeat_token = wheel.add(self)

    def ping_timed_out(self) -> None:
        """No answer to the ping in time (called by the heartbeat wheel)."""
        self._heartbeat = None
        self.close("ping timeout")

    # -- closing ----------------------------------------------------------------------
    def close(self, reason: str = "forced close", abort: bool = False) -> None:
        """End the session; `reason` reaches `on_close` (Node's reason strings).

        `abort` drops the connection at once with whatever it has not yet sent (a slow
        consumer), instead of letting the kernel keep its unread bytes around.
        """
        if self.closed:
            return
        self.closed = True
        self._stop_heartbeat()
        if self._upgrade_timer is not None:
            self._upgrade_timer.cancel()
            self._upgrade_timer = None
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        ws = self._ws
        if ws is not None:
            self._ws = None
            if abort:
                self._out.clear()
                ws.abort()
            else:
                if self._out:
                    self._stats.packets_sent += len(self._out)
                    self._stats.bytes_sent += sum(map(len, self._out))
                    ws.writelines(self._out)
                self._out.clear()
                ws.close()
        else:
            # A waiting GET is answered with the close packet, whoever ended the session.
            if self._poll is not None:
                self._release_poll()
            self._poll = None
            self._queue = ()
        self._server.forget(self)
        callback = self.on_close
        self.on_close = ignore_close
        self.on_message = ignore_message
        try:
            callback(reason)
        except Exception:
            logger.exception("error in close callback of session %s", self.sid)

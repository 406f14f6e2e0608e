"""A message encoded once for any number of recipients.

A broadcast builds one `EncodedMessage`; websocket recipients all get the same frame bytes
(built on first use) and long-polling recipients get its packets appended to their payload.

With connection state recovery, a broadcast's last argument depends on what the recipient
agreed to at connect time (its *offset mode*, see :mod:`salas.recovery.policy`):
:data:`OFFSETS_NONE` (nothing added), :data:`OFFSETS_TRAILING` (a logged broadcast ends with
its offset, as on Node's server) or :data:`OFFSETS_TAGGED` (every event ends with an offset,
``""`` when it has none). A message is encoded in its common form once, and
:meth:`EncodedMessage.for_mode` derives the other form, once, only when a recipient needs it.
"""

from __future__ import annotations

from salas.protocol.engineio import WirePacket
from salas.protocol.errors import ProtocolError
from salas.protocol.socketio import PacketDecoder, SocketPacket, encode_packet
from salas.protocol.wsframe import binary_frame, text_frame

__all__ = [
    "OFFSETS_NONE",
    "OFFSETS_TAGGED",
    "OFFSETS_TRAILING",
    "OFFSET_MODES",
    "EncodedMessage",
]

#: Offset modes: no offset argument at all (python-socketio's plain handlers).
OFFSETS_NONE = 0
#: A logged broadcast ends with its offset (the official JS client, Node's server).
OFFSETS_TRAILING = 1
#: Every event ends with an offset argument, ``""`` for none (:mod:`salas.client`).
OFFSETS_TAGGED = 2
#: How many offset modes there are (the size of a per-mode table).
OFFSET_MODES = 3


class EncodedMessage:
    """One or more Engine.IO packets, ready for any number of recipients.

    Args:
        packets: The Engine.IO packets, websocket form.
        stamp: For a broadcast under connection state recovery, the offset its last
            argument holds (``""``: not logged, no offset added); None otherwise.

    Attributes:
        packets: As given.
        frames: Every packet as a websocket frame, concatenated.
        stamp: As given.
    """

    __slots__ = ("_other", "_source", "frames", "packets", "stamp")

    def __init__(self, packets: list[WirePacket], stamp: str | None = None) -> None:
        self.packets = packets  # Engine.IO packets in websocket form
        self.stamp = stamp
        self._other: EncodedMessage | None = None
        # The packet it was encoded from, when at hand (a message from another process
        # has only its packets): the other form is then built without decoding.
        self._source: SocketPacket | None = None
        # All packets as websocket frames, concatenated: built here, once, because the
        # per-recipient step reads it for every websocket recipient.
        if len(packets) == 1 and type(packets[0]) is str:
            self.frames = text_frame(packets[0])  # (nearly always: one text packet)
        else:
            self.frames = b"".join(
                text_frame(p) if isinstance(p, str) else binary_frame(p) for p in packets
            )

    @classmethod
    def of_socket_packet(cls, packet: SocketPacket) -> EncodedMessage:
        """The Engine.IO MESSAGE packets carrying a Socket.IO packet and its attachments."""
        text, *attachments = encode_packet(packet)
        return cls(["4" + str(text), *attachments])

    @classmethod
    def of_broadcast(cls, packet: SocketPacket, stamp: str) -> EncodedMessage:
        """A recovery broadcast's packet (``stamp`` as :attr:`stamp`), encoded once."""
        message = cls.of_socket_packet(packet)
        message.stamp = stamp
        message._source = packet
        return message

    @property
    def odd_mode(self) -> int | None:
        """The one offset mode whose recipients need :meth:`for_mode`'s other form.

        None when every recipient gets this message as it is (not a recovery broadcast).
        """
        stamp = self.stamp
        if stamp is None:
            return None
        return OFFSETS_NONE if stamp else OFFSETS_TAGGED

    def for_mode(self, mode: int) -> EncodedMessage:
        """This message as a recipient in offset mode ``mode`` gets it.

        A logged broadcast (it ends with its offset) loses that argument for
        :data:`OFFSETS_NONE`; an unlogged one gains ``""`` for :data:`OFFSETS_TAGGED`; any
        other pair is this very message. The other form is built on first use and kept.
        """
        if mode != self.odd_mode:
            return self
        other = self._other
        if other is None:
            other = self._other = self._reshaped()
        return other

    def _reshaped(self) -> EncodedMessage:
        packet = self._source
        if packet is None:
            decoder = PacketDecoder()
            try:
                for wire in self.packets:
                    packet = decoder.feed(wire[1:] if isinstance(wire, str) else wire)
            except ProtocolError:
                packet = None
            if packet is None or not isinstance(packet.data, list):
                # Not an event this process can read back (beyond the limits it puts on
                # what it is sent): every recipient gets it as it is.
                return self
        data = list(packet.data)
        if self.stamp:
            data.pop()
        else:
            data.append("")
        return EncodedMessage.of_socket_packet(SocketPacket(packet.type, packet.nsp, data))

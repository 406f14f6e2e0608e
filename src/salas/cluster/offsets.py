"""Cluster-wide offsets for connection state recovery: one sequence per namespace in Redis.

A recovering client hands back the offset of the last broadcast it received, and gets every
logged broadcast after it. That is exact only if every client receives broadcasts in
increasing offset order, whichever process it is connected to. A counter per process
cannot promise it (two processes count independently), nor can a shared counter read
before publishing (two processes may publish in the other order than they counted).

So the counter and the publication are one step:
:data:`~salas.cluster.scripts.SEQUENCE_SCRIPT` runs in Redis, which runs a script
atomically, increments the namespace's counter and publishes the broadcast with that offset
on the namespace's channel. Redis hands a channel's messages to every subscriber in the
order they were published, so every process — the one that made the broadcast included,
which waits for its own message rather than delivering it at once — sees the namespace's
broadcasts in offset order, and offsets are consecutive. One Redis round trip per broadcast,
none per recipient; the packet is encoded once, without its offset, and each process appends
the offset to the text it received (:func:`stamp_packets`), without decoding it.

The script never hands out an offset at or below ``floor``, the highest one the calling
process has seen: a Redis that restarted empty does not send offsets back to values
clients already hold.
"""

from __future__ import annotations

from salas.protocol.engineio import WirePacket

__all__ = ["parse_sequenced", "stamp_packets"]

_MAX_DIGITS = 19  # what fits in a signed 64-bit integer, as the log stores offsets


def parse_sequenced(data: bytes) -> tuple[str, bytes] | None:
    """``(offset, message)`` of what a sequence script published, None for anything else.

    Args:
        data: A message read from the namespace's channel.
    """
    head, sep, body = data.partition(b" ")
    if not sep or not head.isdigit() or len(head) > _MAX_DIGITS:
        return None
    return head.decode(), body


def stamp_packets(packets: list[WirePacket], stamp: str) -> list[WirePacket]:
    """An event's Engine.IO packets with ``stamp`` added as the event's last argument.

    The same packets :meth:`EncodedMessage.of_broadcast` builds from the event with the
    stamp appended to its data, made from the text alone: an event packet's JSON array
    always holds the event's name, so the stamp goes before its closing bracket.

    Args:
        packets: The event's packets as encoded without the stamp (``"42[...]"``, then any
            binary attachments).
        stamp: The offset, digits only.

    Raises:
        ValueError: The first packet is not the text of an event.
    """
    first = packets[0] if packets else None
    if not isinstance(first, str) or not first.endswith("]"):
        raise ValueError("not the packets of an event")
    return [f'{first[:-1]},"{stamp}"]', *packets[1:]]

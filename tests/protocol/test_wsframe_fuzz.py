"""Property tests of the pre-built websocket frames (salas.protocol.wsframe): every frame,
whatever its length, parses back to its payload in the `websockets` library's client."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from salas.protocol import binary_frame, text_frame

FUZZ = settings(max_examples=200, deadline=None)
# Text that has a UTF-8 form (no lone surrogates).
utf8_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)

# Lengths around the 7-bit, 16-bit and 64-bit length encodings.
lengths = st.one_of(
    st.integers(0, 300), st.sampled_from([125, 126, 127, 65535, 65536, 65537, 70000])
)


def parse(data: bytes) -> list[Frame]:
    """The frames a websocket client reads from `data`."""
    client = ClientProtocol(parse_uri("ws://localhost/"), state=State.OPEN, max_size=None)
    client.receive_data(data)
    frames = [event for event in client.events_received() if isinstance(event, Frame)]
    assert client.parser_exc is None
    return frames


@FUZZ
@given(lengths, st.binary(min_size=1, max_size=1))
def test_binary_frame_round_trip(length: int, fill: bytes) -> None:
    """A binary frame of any length parses back to its bytes."""
    payload = fill * length
    (frame,) = parse(binary_frame(payload))
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.BINARY, True, payload)


@FUZZ
@given(utf8_text)
def test_text_frame_round_trip(text: str) -> None:
    """A text frame parses back to its text, UTF-8 encoded."""
    (frame,) = parse(text_frame(text))
    assert (frame.opcode, frame.data.decode()) == (Opcode.TEXT, text)


@FUZZ
@given(st.lists(st.one_of(utf8_text, st.binary(max_size=40)), max_size=6))
def test_concatenated_frames_round_trip(messages: list[str | bytes]) -> None:
    """Frames written back to back (as one write) parse into the same messages in order."""
    data = b"".join(text_frame(m) if isinstance(m, str) else binary_frame(m) for m in messages)
    got = [f.data.decode() if f.opcode is Opcode.TEXT else f.data for f in parse(data)]
    assert got == messages

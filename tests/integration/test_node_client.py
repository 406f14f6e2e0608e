"""The official Node.js ``socket.io-client`` (4.8) against the test application.

Each test runs one scenario script of ``tests/integration/js`` (which prints its results as
JSON) and asserts on what the client saw.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.integration.itest_support import AppProcess, run_js

pytestmark = pytest.mark.timeout(60)

ECHO_ARGS = ["a", 1, {"b": [True, None, 2.5]}, "ünï©ødé ✓"]


def _check_session(result: dict[str, Any]) -> None:
    assert result["echo"] == ECHO_ARGS
    assert result["event"] == ["x", {"y": 2}]
    assert result["handshake"]["auth"] == {"user": "ana"}
    assert result["handshake"]["query"] == {"foo": "bar"}
    assert result["handshake"]["id"] == result["id"]
    assert result["burst_ok"] is True


async def test_polling_only(app: AppProcess) -> None:
    """A polling-only client connects, stays on polling and exchanges events and acks."""
    result = await run_js("transports.js", app.url, "polling")
    assert "error" not in result, result
    assert result["initial"] == "polling"
    assert result["upgrades"] == []
    assert result["final"] == result["final_after_burst"] == "polling"
    assert result["handshake"]["transport"] == "polling"
    _check_session(result)


async def test_websocket_only(app: AppProcess) -> None:
    """A websocket-only client connects directly over websocket and exchanges events and acks."""
    result = await run_js("transports.js", app.url, "websocket")
    assert "error" not in result, result
    assert result["initial"] == result["final"] == "websocket"
    assert result["handshake"]["transport"] == "websocket"
    _check_session(result)


async def test_polling_upgrades_to_websocket(app: AppProcess) -> None:
    """A default client starts on polling and upgrades to websocket, then keeps working."""
    result = await run_js("transports.js", app.url, "upgrade")
    assert "error" not in result, result
    assert result["initial"] == "polling"
    assert result["upgrades"] == ["websocket"]
    assert result["final"] == result["final_after_burst"] == "websocket"
    assert result["handshake"]["transport"] == "websocket"
    _check_session(result)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_binary_both_ways(app: AppProcess, transport: str) -> None:
    """Buffers nested anywhere in the arguments are acked back byte-equal, and server emits carry
    Buffers."""
    result = await run_js("binary.js", app.url, transport)
    assert "error" not in result, result
    assert result["transport"] == transport
    assert result["acked"] == result["sent"]
    assert result["acked_is_buffer"] is True
    assert result["emitted"] == [{"data": {"$bin": "090807"}, "label": "bin"}, {"$bin": "656e64"}]
    assert result["emitted_is_buffer"] is True


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_acks_with_timeouts(app: AppProcess, transport: str) -> None:
    """Acks work both ways: client emitWithAck with timeout, server emit-with-ack answered or timed
    out."""
    result = await run_js("acks.js", app.url, transport)
    assert "error" not in result, result
    assert result["client_ack"] == "hi"
    assert result["client_timeout"] == "operation has timed out"
    assert 250 <= result["client_timeout_ms"] < 2000
    assert result["in_flight_ok"] is True
    assert result["server_ack_answered"] == {"ok": True, "reply": {"pong": {"n": 42}}}
    assert result["server_ack_no_handler"] == {"ok": False, "error": "timeout"}
    assert result["server_ack_silent"] == {"ok": False, "error": "timeout"}
    assert result["after"] == ["still", "here"]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_namespaces_middleware_and_unknown(app: AppProcess, transport: str) -> None:
    """Two namespaces share one connection; middleware refusal and unknown namespaces are
    connect_errors."""
    result = await run_js("namespaces.js", app.url, transport)
    assert "error" not in result, result
    assert result["same_engine"] is True
    assert result["main_id"] != result["admin_id"]
    assert result["whoami"] == {"nsp": "/admin", "id": result["admin_id"]}
    assert result["main_echo"] == "main"
    refusal = {"message": "unauthorized", "data": {"reason": "bad token"}}
    assert result["refused"] == refusal
    assert result["refused_active"] is False
    assert result["refused_connected"] is False
    assert result["unknown"] == {"message": "Invalid namespace", "data": None}
    assert result["main2_echo_after"] == "still"
    assert result["main2_engine_open"] == "open"
    assert result["lone"] == refusal


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_reconnects_after_transport_drop(app: AppProcess, transport: str) -> None:
    """When the server closes the Engine.IO connection the client sees "transport close" and
    reconnects."""
    result = await run_js("reconnect.js", app.url, transport)
    assert "error" not in result, result
    assert result["reason"] == "transport close"
    assert result["attempts"] >= 1
    assert result["connected"] is True
    assert result["new_id"] is True
    assert result["echo"] == "back"


async def test_rooms(app: AppProcess) -> None:
    """Room broadcasts reach exactly the members; except, except-me, fetch_sockets, sockets_join,
    sockets_leave, disconnect_sockets and leave work."""
    result = await run_js("rooms.js", app.url, uuid.uuid4().hex[:8])
    assert "error" not in result, result
    ids = result["ids"]
    assert ids["A"] in result["join_ack"]
    assert sorted(result["join_ack"]) == result["join_ack"]
    assert result["to_room"] == {"A": [[{"x": 1}]], "B": [[{"x": 1}]], "C": []}
    assert result["except_me"] == {"A": [], "B": [["hey"]], "C": []}
    assert result["fetch_r1"] == result["expected_r1"] == sorted([ids["A"], ids["B"]])
    assert result["fetch_r2"] == sorted([ids["A"], ids["B"]])
    assert result["to_r2"] == {"A": [[[1, 2]]], "B": [[[1, 2]]], "C": []}
    assert not any(room.startswith("r1-") for room in result["leave_ack"])
    assert ids["B"] in result["leave_ack"]
    assert result["fetch_r1_after_leave"] == [ids["A"]]
    assert result["to_r1_after_leave"] == {"A": [[None]], "B": [], "C": []}
    assert result["except_r1"] == {"A": [], "B": [[7]], "C": [[7]]}  # B left r1 before
    assert result["fetch_r2_after_leave_all"] == []
    assert result["to_r2_after_leave_all"] == {"A": [], "B": [], "C": []}
    assert result["room_disconnect_reason"] == "io server disconnect"
    assert result["fetch_r4_after_disconnect"] == []
    assert result["a_still_connected"] is True
    assert result["fetch_r3"] == [ids["C"]]
    assert result["fetch_r3_after_disconnect"] == []


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_server_disconnect_crash_and_client_disconnect(
    app: AppProcess, transport: str
) -> None:
    """disconnect_me gives "io server disconnect" without reconnection; a throwing handler breaks
    nothing."""
    result = await run_js("disconnects.js", app.url, transport)
    assert "error" not in result, result
    assert result["kicked_reason"] == "io server disconnect"
    assert result["kicked_connected"] is False
    assert result["kicked_active"] is False
    assert result["after_crash"] == "alive"
    assert result["crasher_connected"] is True
    assert result["client_disconnect_reason"] == "client namespace disconnect"

"""CORS headers on Engine.IO answers and preflights (salas.engine.cors, CorsConfig)."""

from __future__ import annotations

import pytest

from salas.engine import CorsConfig


def test_cors_config_parse() -> None:
    """CorsConfig.parse takes None, "*", a comma list or a sequence of origins."""
    assert CorsConfig.parse(None) == CorsConfig((), False)
    assert CorsConfig.parse("*") == CorsConfig("*", False)
    assert CorsConfig.parse(" * ", credentials=True) == CorsConfig("*", True)
    assert CorsConfig.parse("http://a.test, http://b.test,") == CorsConfig(
        ("http://a.test", "http://b.test")
    )
    assert CorsConfig.parse(["http://a.test"]).origins == ("http://a.test",)
    assert CorsConfig.parse("").origins == ()


async def test_no_cors_configured_sends_no_headers(engine) -> None:
    """Without CORS configuration no Access-Control-* header is sent (same-origin page)."""
    h = await engine()
    origin = f"http://127.0.0.1:{h.port}"
    response = await h.request("GET", h.path(), headers={"Origin": origin})
    assert response.status == 200
    assert not [k for k in response.headers if k.startswith("access-control-")]


async def test_wildcard_origin(engine) -> None:
    """origins "*" answers `Access-Control-Allow-Origin: *` on handshake, GET and POST."""
    h = await engine(cors=CorsConfig.parse("*"))
    origin = {"Origin": "http://page.test"}
    response = await h.request("GET", h.path(), headers=origin)
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    sid = response.body.decode().split('"sid":"')[1].split('"')[0]
    post = await h.request("POST", h.path(sid=sid), b"4x", headers=origin)
    assert post.headers["access-control-allow-origin"] == "*"
    h.sessions[sid].send_message("y")
    poll = await h.request("GET", h.path(sid=sid), headers=origin)
    assert poll.headers["access-control-allow-origin"] == "*"


async def test_origin_list(engine) -> None:
    """A listed origin is echoed with `Vary: Origin`; an unlisted one is refused (403)."""
    h = await engine(cors=CorsConfig.parse(["http://a.test", "http://b.test"]))
    allowed = await h.request("GET", h.path(), headers={"Origin": "http://b.test"})
    assert allowed.headers["access-control-allow-origin"] == "http://b.test"
    assert "Origin" in allowed.headers["vary"]
    refused = await h.request("GET", h.path(), headers={"Origin": "http://c.test"})
    assert refused.status == 403  # see test_origin.py
    assert "access-control-allow-origin" not in refused.headers
    no_origin = await h.request("GET", h.path())
    assert "access-control-allow-origin" not in no_origin.headers


@pytest.mark.parametrize("origins", ["*", "http://a.test"])
async def test_credentials(engine, origins: str) -> None:
    """With credentials, the origin is echoed (never "*") and Allow-Credentials is true."""
    h = await engine(cors=CorsConfig.parse(origins, credentials=True))
    response = await h.request("GET", h.path(), headers={"Origin": "http://a.test"})
    assert response.headers["access-control-allow-origin"] == "http://a.test"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in response.headers["vary"]


async def test_preflight(engine) -> None:
    """OPTIONS on the engine path answers 204 with methods, and echoes the asked headers."""
    h = await engine(cors=CorsConfig.parse("http://a.test"))
    response = await h.request(
        "OPTIONS",
        h.path(),
        headers={
            "Origin": "http://a.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-token",
        },
    )
    assert response.status == 204
    assert response.headers["access-control-allow-origin"] == "http://a.test"
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert {"GET", "POST"} <= methods
    assert response.headers["access-control-allow-headers"] == "content-type, x-token"
    assert "Access-Control-Request-Headers" in response.headers["vary"]
    assert h.sessions == {}


async def test_preflight_from_unlisted_origin(engine) -> None:
    """A preflight from an origin not allowed gets 204 without any CORS header."""
    h = await engine(cors=CorsConfig.parse("http://a.test"))
    response = await h.request("OPTIONS", h.path(), headers={"Origin": "http://z.test"})
    assert response.status == 204
    assert not [k for k in response.headers if k.startswith("access-control-")]


async def test_error_answers_carry_cors_headers(engine) -> None:
    """Engine.IO error answers (400 JSON) carry the CORS headers too, so pages can read them."""
    h = await engine(cors=CorsConfig.parse("*"))
    response = await h.request("GET", h.path(sid="unknown"), headers={"Origin": "http://a.test"})
    assert response.status == 400
    assert response.headers["access-control-allow-origin"] == "*"

"""The HTTP publish API (salas.chat.api): posts stored and broadcast like a socket's, history,
rooms, bearer auth (static token and admin JWT), hostile input, rate limit, the OpenAPI
document; through a live chat on a loopback port."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from openapi_spec_validator import validate

from salas.auth import TokenVerifier, mint_token
from salas.chat import ApiConfig, ChatApp, ChatConfig, create_app
from salas.chat.api import MAX_API_BODY, OPENAPI
from salas.recovery import open_recovery_store
from salas.store import MessageStore, open_store
from tests.chat.chat_support import FAST, GatedStore, RawClient, clients, sentinel

pytestmark = pytest.mark.timeout(30)

TOKEN = "t0ken-for-the-tests-0123456789"
SECRET = "a-jwt-secret-of-at-least-32-bytes!!"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def code(self) -> str:
        return str(self.json()["error"]["code"])


@dataclass
class Api:
    app: ChatApp
    store: Any
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        auth: bool = True,
        length: int | None = None,
    ) -> Reply:
        """One raw HTTP/1.1 request on a fresh connection (any bytes in the target);
        `length`: a Content-Length to declare instead of the body's."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
            lines.append("Connection: close")
            for name, value in {**(AUTH if auth else {}), **(headers or {})}.items():
                lines.append(f"{name}: {value}")
            if body is not None:
                lines.append(f"Content-Length: {len(body) if length is None else length}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            status_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
            found = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                found[name.strip().lower()] = value.strip()
            length = int(found.get("content-length", "0"))
            rest = b"" if method == "HEAD" else await reader.readexactly(length)
            return Reply(int(status_line.split(" ", 2)[1]), found, rest)
        finally:
            writer.close()

    async def post(
        self, room: str, payload: Any, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Reply:
        body, target = orjson.dumps(payload), f"/api/rooms/{room}/messages"
        return await self.request("POST", target, body, {**JSON, **(headers or {})}, **kwargs)


@asynccontextmanager
async def api_chat(
    api: ApiConfig | None = None,
    store: MessageStore | GatedStore | None = None,
    config: ChatConfig = FAST,
    recovery_url: str | None = None,
) -> AsyncIterator[Api]:
    """The chat with the API on (the static TOKEN unless `api`), on a free loopback port."""
    store = store if store is not None else open_store("memory://")
    await store.open()
    recovery = open_recovery_store(recovery_url) if recovery_url else None
    app = create_app(
        config,
        store,  # type: ignore[arg-type]
        recovery,
        api=api if api is not None else ApiConfig(token=TOKEN),
    )
    port = await app.start("127.0.0.1", 0)
    try:
        yield Api(app, store, port)
    finally:
        await app.shutdown()
        await store.close()


# ------------------------------------------------------------------------ posting and reading
async def test_post_is_stored_broadcast_and_answered() -> None:
    """A POST is stored, broadcast to the room's socket members like a client message
    (user "api" by default, or the one given), and answered 201 with its id and ts."""
    async with api_chat() as api, clients(api.url, "ana") as (ana,):
        assert (await ana.call("channel_join", "lobby"))["ok"] is True
        reply = await api.post("lobby", {"message": "  hello from the backend  "})
        assert reply.status == 201
        posted = reply.json()
        assert set(posted) == {"id", "ts"}
        got = await ana.next("message", lambda m: m["id"] == posted["id"])
        assert got == {
            "id": posted["id"],
            "channel": "lobby",
            "message": "hello from the backend",
            "user": "api",
            "ts": posted["ts"],
        }
        reply = await api.post("lobby", {"message": "deploy done", "user": "ci-bot"})
        assert reply.status == 201
        got = await ana.next("message", lambda m: m["message"] == "deploy done")
        assert got["user"] == "ci-bot"
        stored = await api.store.history("lobby")
        assert [(m.message, m.user) for m in stored] == [
            ("hello from the backend", "api"),
            ("deploy done", "ci-bot"),
        ]


async def test_duplicate_client_id_answers_the_first_and_is_not_broadcast_again() -> None:
    """A repeated client_id stores nothing, answers 200 with the first id and ts, and is not
    broadcast a second time."""
    async with api_chat() as api, clients(api.url, "ana") as (ana,):
        await ana.call("channel_join", "lobby")
        first = await api.post("lobby", {"message": "once", "client_id": "job-42"})
        assert first.status == 201
        await asyncio.sleep(0.002)  # the retry comes in a later millisecond, as retries do
        again = await api.post("lobby", {"message": "once", "client_id": "job-42"})
        assert (again.status, again.json()) == (200, first.json())
        await sentinel(ana, "lobby", ana)
        assert [m["message"] for m in ana.of("message")].count("once") == 1
        assert len(await api.store.history("lobby")) == 2  # "once" and the sentinel


async def test_api_and_socket_messages_share_the_room_order() -> None:
    """Messages posted over HTTP and over the socket reach a member in id order."""
    async with api_chat() as api, clients(api.url, "ana", "bob") as (ana, bob):
        for client in (ana, bob):
            await client.call("channel_join", "lobby")
        results = await asyncio.gather(
            *(api.post("lobby", {"message": f"http {i}"}) for i in range(5)),
            *(bob.call("message", {"channel": "lobby", "message": f"sock {i}"}) for i in range(5)),
        )
        assert all(r.status == 201 for r in results[:5])
        await sentinel(bob, "lobby", ana)
        ids = [m["id"] for m in ana.of("message")]
        assert ids == sorted(ids) and len(ids) == 11


async def test_posted_message_is_recovered_by_a_socket_that_missed_it(tmp_path: Path) -> None:
    """A member cut off while the API posts gets the message replayed when it recovers."""
    url = f"sqlite://{tmp_path / 'chat.db'}"
    async with api_chat(store=open_store(url), recovery_url=url) as api:
        ana = await RawClient.connect(api.port, {"name": "ana"})
        assert (await ana.call("channel_join", "lobby"))["ok"] is True
        await api.post("lobby", {"message": "seen"})
        await ana.next("message", lambda m: m["message"] == "seen")
        await ana.drop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while api.app.presence.is_connected(ana.sid):
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        missed = (await api.post("lobby", {"message": "missed"})).json()
        again = await ana.reconnect()
        try:
            assert again.of("welcome")[0]["recovered"] is True
            assert [m["id"] for m in again.of("message")] == [missed["id"]]
        finally:
            await again.close()


async def test_history_pages_like_the_history_event() -> None:
    """GET messages: the latest `limit`, `before` pages back, `after` forward; a room that
    never had a message has an empty history."""
    async with api_chat() as api:
        ids = [(await api.post("lobby", {"message": f"m{i}"})).json()["id"] for i in range(6)]

        async def page(query: str) -> list[int]:
            reply = await api.request("GET", f"/api/rooms/lobby/messages{query}")
            assert reply.status == 200, reply.body
            assert reply.json()["room"] == "lobby"
            return [m["id"] for m in reply.json()["messages"]]

        assert await page("") == ids
        assert await page("?limit=2") == ids[-2:]
        assert await page(f"?limit=2&before={ids[-2]}") == ids[2:4]
        assert await page(f"?after={ids[1]}&limit=3") == ids[2:5]
        assert await page(f"?after={ids[0]}&before={ids[3]}") == ids[1:3]
        reply = await api.request("GET", "/api/rooms/never-used/messages")
        assert (reply.status, reply.json()) == (200, {"room": "never-used", "messages": []})
        message = (await api.request("GET", "/api/rooms/lobby/messages?limit=1")).json()
        assert set(message["messages"][0]) == {"id", "channel", "message", "user", "ts"}


@pytest.mark.parametrize(
    "query",
    ["?limit=0", "?limit=201", "?limit=ten", "?before=-1", "?after=1.5", "?before=+3",
     "?after=%D9%A1", "?limt=5", "?before=99999999999999999999"],
)  # fmt: skip
async def test_bad_history_queries_are_400(query: str) -> None:
    """Limits outside 1..200, ids that are not plain digits, unknown parameters: 400."""
    async with api_chat() as api:
        reply = await api.request("GET", f"/api/rooms/lobby/messages{query}")
        assert (reply.status, reply.code) == (400, "bad_request")


async def test_rooms_lists_what_the_rooms_event_lists() -> None:
    """GET /api/rooms: the rooms with members and their counts, as the `rooms` event has them."""
    async with api_chat() as api, clients(api.url, "ana", "bob") as (ana, bob):
        for client, room in ((ana, "lobby"), (bob, "lobby"), (bob, "dev")):
            await client.call("channel_join", room)
        reply = await api.request("GET", "/api/rooms")
        assert reply.status == 200
        expected = [
            {"name": "dev", "count": 1, "private": False},
            {"name": "lobby", "count": 2, "private": False},
        ]
        assert reply.json() == {"rooms": expected}
        event = await ana.next("rooms", lambda r: r["rooms"] == expected)
        assert event["rooms"] == reply.json()["rooms"]
        head = await api.request("HEAD", "/api/rooms")
        assert head.status == 200 and head.headers["content-length"] == str(len(reply.body))


async def test_store_down_is_503() -> None:
    """A store that fails: posts and history answer 503 `unavailable` with Retry-After."""
    store = GatedStore()
    async with api_chat(store=store) as api:
        store.fail = store.fail_history = True
        for reply in (
            await api.post("lobby", {"message": "lost"}),
            await api.request("GET", "/api/rooms/lobby/messages"),
        ):
            assert (reply.status, reply.code) == (503, "unavailable")
            assert reply.headers["retry-after"] == "1"


# ------------------------------------------------------------------------------- authorization
async def test_api_is_off_without_a_token() -> None:
    """No token and no verifier: every /api path answers 404, the document included."""
    async with api_chat(api=ApiConfig()) as api:
        for method, path in (
            ("GET", "/api/rooms"),
            ("POST", "/api/rooms/lobby/messages"),
            ("GET", "/api/rooms/lobby/messages"),
            ("GET", "/api/openapi.json"),
        ):
            assert (await api.request(method, path, b"{}", JSON)).status == 404, path


async def test_missing_or_wrong_token_is_401(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a bearer token, or with a wrong one, 401 with WWW-Authenticate: Bearer; the
    right one passes; the token is compared with hmac.compare_digest."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    async with api_chat() as api:
        for headers in (
            {},
            {"Authorization": "Bearer"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": f"Bearer {TOKEN[:-1]}"},
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": "Bearer \xe9t\xe9"},
        ):
            reply = await api.request("GET", "/api/rooms", headers=headers, auth=False)
            assert (reply.status, reply.code) == (401, "unauthorized"), headers
            assert reply.headers["www-authenticate"].startswith("Bearer"), headers
            refused = await api.post("lobby", {"message": "no"}, headers=headers, auth=False)
            assert refused.status == 401
        assert await api.store.history("lobby") == []
        compared.clear()
        reply = await api.request("GET", "/api/rooms", headers={"Authorization": f"bearer {TOKEN}"})
        assert reply.status == 200
        assert compared == [(TOKEN.encode(), TOKEN.encode())]


async def test_admin_jwt_is_accepted_when_a_verifier_is_given() -> None:
    """With a verifier, a JWT with role admin passes, a member's is 403, a forged one 401;
    the static token still works."""
    verifier = TokenVerifier(secret=SECRET)
    async with api_chat(api=ApiConfig(token=TOKEN, verifier=verifier)) as api:
        admin = mint_token(SECRET, "ops", role="admin")
        member = mint_token(SECRET, "ana", role="member")
        forged = mint_token("another-secret-of-at-least-32-bytes", "ops", role="admin")

        async def rooms(token: str) -> Reply:
            headers = {"Authorization": f"Bearer {token}"}
            return await api.request("GET", "/api/rooms", headers=headers, auth=False)

        assert (await rooms(admin)).status == 200
        assert (await rooms(TOKEN)).status == 200
        reply = await rooms(member)
        assert (reply.status, reply.code) == (403, "forbidden")
        reply = await rooms(forged)
        assert (reply.status, reply.code) == (401, "unauthorized")
    async with api_chat(api=ApiConfig(verifier=verifier)) as api:  # JWTs only
        headers = {"Authorization": f"Bearer {admin}"}
        assert (await api.request("GET", "/api/rooms", headers=headers, auth=False)).status == 200
        assert (await api.request("GET", "/api/rooms")).status == 401


@pytest.mark.parametrize("token", ["short", "has a space in it 123", "n\u00f6n-ascii-token-1234"])
def test_weak_or_unsendable_tokens_are_refused(token: str) -> None:
    """An API token under 16 characters, with spaces or not ASCII is a ValueError."""
    with pytest.raises(ValueError):
        ApiConfig(token=token)


# ------------------------------------------------------------------------------ hostile input
@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "bad_request"),
        (b"", "bad_request"),
        (b"[" * 5000 + b"]" * 5000, "bad_request"),  # nesting past orjson's limit
        (b'{"message": "\xff\xfe"}', "bad_request"),  # not UTF-8
        (b'{"message": "\\ud800"}', "bad_request"),  # a lone surrogate
        (b'["message"]', "bad_request"),
        (b'{"message": null}', "bad_request"),
        (b'{"text": "hi"}', "bad_request"),
        (b'{"message": "hi", "channel": "other"}', "bad_request"),
        (b'{"message": 5}', "invalid_message"),
        (b'{"message": "   "}', "invalid_message"),
        (b'{"message": "nul\\u0000"}', "invalid_message"),
        (b'{"message": "' + b"x" * 4001 + b'"}', "invalid_message"),
        (b'{"message": "hi", "user": ""}', "invalid_name"),
        (b'{"message": "hi", "user": "' + b"u" * 33 + b'"}', "invalid_name"),
        (b'{"message": "hi", "user": "a\\u202eb"}', "invalid_name"),
        (b'{"message": "hi", "client_id": 7}', "bad_request"),
        (b'{"message": "hi", "client_id": "' + b"c" * 129 + b'"}', "bad_request"),
    ],
)
async def test_bad_bodies_are_400_with_the_chats_codes(body: bytes, code: str) -> None:
    """Bad JSON (broken, too deep, not UTF-8, not an object) and bad fields: 400 with the
    chat's codes; nothing stored."""
    async with api_chat() as api:
        reply = await api.request("POST", "/api/rooms/lobby/messages", body, JSON)
        assert (reply.status, reply.code) == (400, code)
        assert await api.store.history("lobby") == []


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1",
     "application/jsonp", "multipart/form-data; boundary=x"],
)  # fmt: skip
async def test_wrong_content_type_is_415(content_type: str | None) -> None:
    """A body that is not declared as UTF-8 JSON: 415."""
    async with api_chat() as api:
        headers = {"Content-Type": content_type} if content_type else {}
        body = b'{"message": "hi"}'
        reply = await api.request("POST", "/api/rooms/lobby/messages", body, headers)
        assert (reply.status, reply.code) == (415, "unsupported_media_type")
    ok = {"Content-Type": "Application/JSON; Charset=UTF-8"}
    async with api_chat() as api:
        assert (await api.request("POST", "/api/rooms/a/messages", body, ok)).status == 201


async def test_huge_bodies_are_413() -> None:
    """A body over 64 KiB: 413 in JSON; one over the server's 1 MB bound is refused before
    it is read."""
    async with api_chat() as api:
        body = b'{"message": "' + b"x" * MAX_API_BODY + b'"}'
        reply = await api.request("POST", "/api/rooms/lobby/messages", body, JSON)
        assert (reply.status, reply.code) == (413, "payload_too_large")
        target = "/api/rooms/lobby/messages"
        reply = await api.request("POST", target, b"", JSON, length=2_000_000)
        assert reply.status == 413
        assert await api.store.history("lobby") == []


@pytest.mark.parametrize(
    "room",
    ["%20%20", "x" * 65, "a%00b", "line%0Abreak", "a%FFb", "%ED%A0%80", "bidi%E2%80%AEx",
     "a%09b"],
)  # fmt: skip
async def test_invalid_room_names_are_400(room: str) -> None:
    """Room names the chat refuses (blank, too long, controls, not UTF-8, a surrogate, bidi
    overrides) are refused in the path too: 400 invalid_room, nothing stored."""
    async with api_chat() as api:
        reply = await api.post(room, {"message": "hi"})
        assert (reply.status, reply.code) == (400, "invalid_room"), room
        reply = await api.request("GET", f"/api/rooms/{room}/messages")
        assert (reply.status, reply.code) == (400, "invalid_room"), room


async def test_room_names_are_labels_never_paths(tmp_path: Path) -> None:
    """Path traversal in {room}: dot segments outside it find no file (404), and an encoded
    one is just a room's name, the same one a socket can join."""
    async with api_chat() as api, clients(api.url, "ana") as (ana,):
        for target in (
            "/api/rooms/../../../etc/passwd",
            "/api/rooms/../../pyproject.toml",
            "/api/rooms/..%2F..%2Fetc%2Fpasswd",
        ):
            reply = await api.request("GET", target)
            assert reply.status == 404, target
            assert b"root:" not in reply.body and b"[project]" not in reply.body
        await ana.call("channel_join", "../../etc/passwd")
        reply = await api.post("..%2F..%2Fetc%2Fpasswd", {"message": "just a room"})
        assert reply.status == 201
        got = await ana.next("message", lambda m: m["message"] == "just a room")
        assert got["channel"] == "../../etc/passwd"
        reply = await api.request("GET", "/api/rooms/..%2F..%2Fetc%2Fpasswd/messages")
        assert [m["message"] for m in reply.json()["messages"]] == ["just a room"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/rooms/lobby/messages", "GET, HEAD, POST"),
        ("DELETE", "/api/rooms/lobby/messages", "GET, HEAD, POST"),
        ("PATCH", "/api/rooms", "GET, HEAD"),
        ("POST", "/api/rooms", "GET, HEAD"),
        ("OPTIONS", "/api/rooms", "GET, HEAD"),
        ("DELETE", "/api/openapi.json", "GET, HEAD"),
    ],
)
async def test_other_methods_are_405_in_json(method: str, path: str, allow: str) -> None:
    """Methods a route does not answer: 405 method_not_allowed with an Allow header."""
    async with api_chat() as api:
        reply = await api.request(method, path, b"{}", JSON)
        assert (reply.status, reply.code) == (405, "method_not_allowed")
        assert reply.headers["allow"] == allow


# ------------------------------------------------------------------------------ rate limiting
async def test_rate_limit_per_token_leaves_sockets_alone() -> None:
    """Past its burst a token gets 429 rate_limited with Retry-After, and nothing is stored;
    meanwhile a socket member chats and gets its own messages as ever."""
    config = ApiConfig(token=TOKEN, rate=0.2, burst=5)
    async with api_chat(api=config) as api, clients(api.url, "ana") as (ana,):
        await ana.call("channel_join", "lobby")

        async def flood() -> list[Reply]:
            return [await api.post("lobby", {"message": f"m{i}"}) for i in range(20)]

        async def chat() -> list[Any]:
            return [
                await ana.call("message", {"channel": "lobby", "message": f"honest {i}"})
                for i in range(5)
            ]

        replies, acks = await asyncio.gather(flood(), chat())
        assert [r.status for r in replies] == [201] * 5 + [429] * 15
        limited = replies[-1]
        assert limited.code == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert all(ack["ok"] for ack in acks)
        await sentinel(ana, "lobby", ana)
        honest = [m["message"] for m in ana.of("message") if m["user"] == "ana"]
        assert honest[:5] == [f"honest {i}" for i in range(5)]
        stored = [m.message for m in await api.store.history("lobby", limit=100)]
        assert [t for t in stored if t.startswith("m")] == [f"m{i}" for i in range(5)]
        assert (await api.request("GET", "/api/rooms")).status == 429  # every route counts


# ------------------------------------------------------------------------------- the document
def test_openapi_document_is_valid() -> None:
    """The OpenAPI document passes openapi-spec-validator (3.1)."""
    validate(OPENAPI)
    assert OPENAPI["openapi"].startswith("3.1")


async def test_openapi_document_covers_every_api_route() -> None:
    """Served at /api/openapi.json without a token; every route the router has under /api is
    in it, and every method it does not list answers 405."""
    async with api_chat() as api:
        reply = await api.request("GET", "/api/openapi.json", auth=False)
        assert reply.status == 200
        assert reply.headers["content-type"] == "application/json"
        assert reply.json() == orjson.loads(orjson.dumps(OPENAPI))
        routes = {p: m for p, m in api.app.io.router.routes().items() if p.startswith("/api")}
        assert set(routes) == set(OPENAPI["paths"])
        for path, methods in routes.items():
            documented = {m.upper() for m in OPENAPI["paths"][path] if m != "parameters"}
            assert documented, path
            assert documented <= set(methods), path
            target = path.replace("{room}", "lobby")
            for method in set(methods) - documented - {"HEAD"}:
                refused = await api.request(method, target, b"{}", JSON)
                assert refused.status == 405, (method, path)

"""The HTTP publish API: post to rooms and read them from a backend, without a socket.

Routes (docs/api.md; the OpenAPI 3.1 document is `OPENAPI`, served at /api/openapi.json):

- ``POST /api/rooms/{room}/messages`` with ``{"message", "client_id"?, "user"?}``: stored and
  broadcast through `MessageService.post`, exactly as a socket's message (room order,
  dedup by client_id, logged for connection state recovery); ``201 {"id", "ts"}``, or
  ``200`` with the first message's id and ts for a client_id stored already.
- ``GET /api/rooms``: the rooms with their member counts, as the ``rooms`` event lists them.
- ``GET /api/rooms/{room}/messages?before=&after=&limit=``: history, as the ``history``
  event pages it (a room that never had a message has an empty history, not a 404).

Every route but the OpenAPI document needs ``Authorization: Bearer <token>``: the API
token (compared in constant time), or a JWT with role ``admin`` when a `TokenVerifier` is
given. Without either the API is off and not routed at all (404). Each credential spends
from its own token bucket. Errors are ``{"error": {"code", "message"}}`` with the chat's
codes where one fits (docs/chat-protocol.md) and HTTP's own otherwise.
"""

from __future__ import annotations

import collections
import hmac
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from salas.auth import AuthError, TokenVerifier
from salas.chat.errors import (
    BAD_REQUEST,
    INTERNAL,
    INVALID_ROOM,
    RATE_LIMITED,
    UNAVAILABLE,
    ChatError,
)
from salas.chat.messages import MessageService
from salas.chat.validation import (
    HISTORY_LIMIT_DEFAULT,
    HISTORY_LIMIT_MAX,
    MAX_CLIENT_ID,
    MAX_MESSAGE,
    MAX_NAME,
    MAX_ROOM,
    check_client_id,
    check_name,
    check_room,
    check_text,
)
from salas.db.common import now_ms
from salas.engine import TokenBucket
from salas.engine.logsafe import printable
from salas.http import Request, Response
from salas.store import InvalidInputError, MessageStore, StoreError

__all__ = [
    "API_PREFIX",
    "DEFAULT_API_USER",
    "MAX_API_BODY",
    "MIN_API_TOKEN",
    "OPENAPI",
    "ApiConfig",
    "HttpApi",
]

logger = logging.getLogger("salas.chat.api")

API_PREFIX = "/api"
# The `user` a posted message shows when the request names none.
DEFAULT_API_USER = "api"
# A message is at most 4000 characters (16 KB of UTF-8) plus a client_id and a name:
# 64 KiB is room to spare and still small.
MAX_API_BODY = 64 * 1024
# An API token shorter than this is refused at startup: the token is the whole defence.
MIN_API_TOKEN = 16
# Distinct credentials (JWT subjects) with a bucket kept; the oldest is dropped beyond.
_MAX_BUCKETS = 10_000
# A message id in a query: ASCII digits only (int() would take "+1", " 1", "1_0", Arabic digits).
_ID = re.compile(r"[0-9]{1,18}")
_BODY_FIELDS = frozenset({"message", "client_id", "user"})
_HISTORY_PARAMS = frozenset({"before", "after", "limit"})

# HTTP's own error codes, beside the chat's (salas.chat.errors).
UNAUTHORIZED = "unauthorized"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
PAYLOAD_TOO_LARGE = "payload_too_large"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"

# Methods answered 405 (with JSON) on the API's paths; others never reach a route.
_OTHER_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

_Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Settings of the HTTP publish API; off unless it has a `token` or a `verifier`.

    `token`: the static API token (`--api-token`); at least `MIN_API_TOKEN` characters,
    printable ASCII without spaces. `verifier`: also accept JWTs with role ``admin``.
    `user`: the name a posted message shows when the request names none. `rate` and
    `burst`: each credential's token bucket (requests per second; `rate` 0: no limit).
    """

    token: str | None = field(default=None, repr=False)
    verifier: TokenVerifier | None = None
    user: str = DEFAULT_API_USER
    rate: float = 50.0
    burst: int = 100
    max_body: int = MAX_API_BODY

    def __post_init__(self) -> None:
        token = self.token
        if token is not None and (
            len(token) < MIN_API_TOKEN
            or not token.isascii()
            or not token.isprintable()
            or " " in token
        ):
            raise ValueError(
                f"the API token must be at least {MIN_API_TOKEN} printable ASCII characters "
                "without spaces"
            )
        check_name(self.user)
        if self.rate < 0:
            raise ValueError("ApiConfig.rate must not be negative (0: no limit)")
        if self.burst < 1 or self.max_body < 1:
            raise ValueError("ApiConfig.burst and max_body must be at least 1")

    @property
    def enabled(self) -> bool:
        """Whether the API is on: it has a way to authorize a request."""
        return self.token is not None or self.verifier is not None


class _Refused(Exception):
    """An API error: the HTTP status, the code and message of the JSON body, headers."""

    def __init__(
        self, status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []

    def response(self) -> Response:
        body = {"error": {"code": self.code, "message": self.message}}
        response = Response.json(body, self.status)
        response.headers.extend(self.headers)
        return response


# The HTTP status of each chat error code the API can meet.
_CHAT_STATUS = {UNAVAILABLE: 503, RATE_LIMITED: 429, INTERNAL: 500}


def _from_chat(error: ChatError) -> _Refused:
    status = _CHAT_STATUS.get(error.code, 400)
    headers = [("Retry-After", "1")] if status == 503 else None
    return _Refused(status, error.code, error.message, headers)


class HttpApi:
    """The API's routes on one chat: `mount(io)` registers them when `config.enabled`.

    `room_list()` gives the rooms ``GET /api/rooms`` lists (the chat passes the list its
    ``rooms`` event sends). `clock` is the buckets' monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        config: ApiConfig,
        messages: MessageService,
        store: MessageStore,
        room_list: Callable[[], list[dict[str, object]]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.messages = messages
        self.store = store
        self._room_list = room_list
        self._clock = clock
        self._token = config.token.encode() if config.token is not None else None
        self._buckets: collections.OrderedDict[str, TokenBucket] = collections.OrderedDict()

    def mount(self, io: Any) -> bool:
        """Register the routes on `io` (a `salas.Server`); False (nothing registered, every
        /api path a 404) when the API is off."""
        if not self.config.enabled:
            return False
        routes: dict[str, dict[str, _Handler]] = {
            f"{API_PREFIX}/rooms": {"GET": self._rooms},
            f"{API_PREFIX}/rooms/{{room}}/messages": {
                "GET": self._history,
                "POST": self._post,
            },
        }
        for path, handlers in routes.items():
            for method, handler in handlers.items():
                io.route(path, methods=(method,))(self._guarded(handler))
            others = [m for m in _OTHER_METHODS if m not in handlers]
            io.route(path, methods=others)(self._not_allowed(sorted({*handlers, "HEAD"})))
        io.route(f"{API_PREFIX}/openapi.json", methods=("GET",))(self._openapi)
        io.route(f"{API_PREFIX}/openapi.json", methods=_OTHER_METHODS[1:])(
            self._not_allowed(["GET", "HEAD"])
        )
        return True

    # -- the pipeline every request goes through ----------------------------------------
    def _guarded(self, handler: _Handler) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            try:
                credential = self._authorize(request)
                self._spend(credential)
                return await handler(request)
            except _Refused as refused:
                return refused.response()
            except ChatError as error:
                return _from_chat(error).response()
            except Exception:
                method, path = printable(request.method), printable(request.path)
                logger.exception("error in %s %s", method, path)
                return _Refused(500, INTERNAL, "internal error").response()

        return guarded

    @staticmethod
    def _not_allowed(allow: list[str]) -> Callable[[Request], Response]:
        def not_allowed(request: Request) -> Response:
            refused = _Refused(
                405,
                METHOD_NOT_ALLOWED,
                f"{request.method} is not allowed here; use {', '.join(allow)}",
                [("Allow", ", ".join(allow))],
            )
            return refused.response()

        return not_allowed

    def _authorize(self, request: Request) -> str:
        """The credential the request carries (its bucket's key), or 401/403."""
        scheme, _, presented = request.headers.get("authorization", "").strip().partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            raise _Refused(
                401,
                UNAUTHORIZED,
                "send Authorization: Bearer <API token>",
                [("WWW-Authenticate", 'Bearer realm="salas"')],
            )
        # Header text is latin-1 decoded: its bytes again, compared as bytes (compare_digest
        # refuses non-ASCII str), in time independent of where they differ.
        if self._token is not None and hmac.compare_digest(
            presented.encode("latin-1"), self._token
        ):
            return "token"
        verifier = self.config.verifier
        if verifier is not None:
            try:
                claims = verifier.verify(presented)
            except AuthError:
                pass
            else:
                if claims.role != "admin":
                    raise _Refused(403, FORBIDDEN, "the API needs a token with role admin")
                return "jwt:" + claims.sub
        raise _Refused(
            401,
            UNAUTHORIZED,
            "the token is not valid",
            [("WWW-Authenticate", 'Bearer realm="salas", error="invalid_token"')],
        )

    def _spend(self, credential: str) -> None:
        """One request from `credential`'s bucket, or 429 with Retry-After."""
        if not self.config.rate:
            return
        bucket = self._buckets.get(credential)
        if bucket is None:
            bucket = TokenBucket(self.config.burst, self.config.rate, self._clock)
            self._buckets[credential] = bucket
            if len(self._buckets) > _MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(credential)
        if not bucket.take():
            wait = max(1, math.ceil((1.0 - bucket.tokens) / bucket.rate))
            raise _Refused(
                429, RATE_LIMITED, "too many requests; slow down", [("Retry-After", str(wait))]
            )

    # -- routes ---------------------------------------------------------------------------
    async def _rooms(self, request: Request) -> Response:
        return Response.json({"rooms": self._room_list()})

    async def _post(self, request: Request) -> Response:
        room = _room(request)
        body = self._json_body(request)
        unknown = sorted(set(body) - _BODY_FIELDS)
        if unknown:
            raise _Refused(400, BAD_REQUEST, f"unknown fields: {', '.join(unknown)}")
        if body.get("message") is None:
            raise _Refused(400, BAD_REQUEST, "the body needs the field 'message'")
        text = check_text(body["message"])
        client_id = check_client_id(body.get("client_id"))
        user = self.config.user if body.get("user") is None else check_name(body["user"])
        started = now_ms()
        stored = await self.messages.post(room, text, user=user, client_id=client_id)
        # A client_id stored before this request (or with other text or user) is a retry:
        # the store gave back the first message, which was not broadcast again.
        repeat = client_id is not None and (
            stored.ts < started or (stored.message, stored.user) != (text, user)
        )
        return Response.json({"id": stored.id, "ts": stored.ts}, 200 if repeat else 201)

    async def _history(self, request: Request) -> Response:
        room = _room(request)
        query = request.query
        unknown = sorted(set(query) - _HISTORY_PARAMS)
        if unknown:
            raise _Refused(400, BAD_REQUEST, f"unknown query parameters: {', '.join(unknown)}")
        before, after = _id_param(query, "before"), _id_param(query, "after")
        limit = _id_param(query, "limit")
        if limit is None:
            limit = HISTORY_LIMIT_DEFAULT
        elif not 1 <= limit <= HISTORY_LIMIT_MAX:
            raise _Refused(
                400, BAD_REQUEST, f"limit must be a whole number from 1 to {HISTORY_LIMIT_MAX}"
            )
        try:
            messages = await self.store.history(room, before=before, after=after, limit=limit)
        except InvalidInputError as exc:
            raise _Refused(400, BAD_REQUEST, str(exc)) from exc
        except StoreError as exc:
            logger.warning("history of %r unavailable: %s", room, exc)
            raise ChatError(UNAVAILABLE, "history is unavailable right now") from exc
        return Response.json({"room": room, "messages": [m.to_wire() for m in messages]})

    def _openapi(self, request: Request) -> Response:
        return Response(200, _OPENAPI_JSON, "application/json")

    def _json_body(self, request: Request) -> dict[str, Any]:
        """The request's body: a JSON object of at most `max_body` bytes, or 413/415/400."""
        if len(request.body) > self.config.max_body:
            raise _Refused(413, PAYLOAD_TOO_LARGE, f"the body is over {self.config.max_body} bytes")
        kind, _, params = request.headers.get("content-type", "").partition(";")
        charset = params.strip().lower().replace(" ", "")
        if kind.strip().lower() != "application/json" or charset not in (
            "",
            "charset=utf-8",
            'charset="utf-8"',
        ):
            raise _Refused(
                415, UNSUPPORTED_MEDIA_TYPE, "send Content-Type: application/json (UTF-8)"
            )
        try:
            # orjson refuses text that is not UTF-8, lone surrogates and nesting past 1024.
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            raise _Refused(400, BAD_REQUEST, "the body is not valid UTF-8 JSON") from exc
        if not isinstance(body, dict):
            raise _Refused(400, BAD_REQUEST, "the body must be a JSON object")
        return body


def _room(request: Request) -> str:
    """The `{room}` of the path, checked as the chat checks room names."""
    return check_room(request.path_params.get("room", ""))


def _id_param(query: dict[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    if not _ID.fullmatch(value):
        raise _Refused(400, BAD_REQUEST, f"{name} must be a whole number")
    return int(value)


# -- the OpenAPI document ---------------------------------------------------------------------
def _error_response(description: str, codes: list[str]) -> dict[str, Any]:
    return {
        "description": f"{description} (code: {', '.join(codes)})",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_ROOM_PARAM = {
    "name": "room",
    "in": "path",
    "required": True,
    "description": (
        "The room, percent-encoded (a '/' in a name is %2F). 1 to "
        f"{MAX_ROOM} printable characters after trimming, as the chat's room names."
    ),
    "schema": {"type": "string", "minLength": 1},
}
_UNAUTHORIZED = {
    "description": "No bearer token, or not a valid one (code: unauthorized)",
    "headers": {
        "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"},
    },
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_RATE_LIMITED = {
    "description": "Over this credential's request rate (code: rate_limited)",
    "headers": {
        "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"},
    },
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_COMMON_ERRORS: dict[str, Any] = {
    "401": _UNAUTHORIZED,
    "403": _error_response("A JWT without role admin", [FORBIDDEN]),
    "405": _error_response("Another method", [METHOD_NOT_ALLOWED]),
    "429": _RATE_LIMITED,
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "salas HTTP API",
        "version": "1",
        "description": (
            "Publish to the chat's rooms and read them from a backend. A posted message is "
            "stored and broadcast as a socket's message is. See docs/api.md."
        ),
        "license": {"name": "MIT", "identifier": "MIT"},
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": {
        f"{API_PREFIX}/rooms": {
            "get": {
                "operationId": "listRooms",
                "summary": "The rooms with members, with their member counts",
                "description": (
                    "The list the chat's `rooms` event sends: the most populated rooms, "
                    "up to the chat's rooms_list_max, by name."
                ),
                "responses": {
                    "200": {
                        "description": "The rooms",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["rooms"],
                                    "properties": {
                                        "rooms": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Room"},
                                        }
                                    },
                                }
                            }
                        },
                    },
                    **_COMMON_ERRORS,
                },
            }
        },
        f"{API_PREFIX}/rooms/{{room}}/messages": {
            "parameters": [_ROOM_PARAM],
            "get": {
                "operationId": "roomHistory",
                "summary": "A page of the room's history, oldest first",
                "description": (
                    "Without bounds, the latest `limit` messages; `before` pages back, "
                    "`after` forward, both: the first `limit` strictly between. A room "
                    "that never had a message has an empty history."
                ),
                "parameters": [
                    {
                        "name": "before",
                        "in": "query",
                        "description": "Only messages with a smaller id",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "description": "Only messages with a larger id",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "description": "How many messages at most",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": HISTORY_LIMIT_MAX,
                            "default": HISTORY_LIMIT_DEFAULT,
                        },
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The messages",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["room", "messages"],
                                    "properties": {
                                        "room": {"type": "string"},
                                        "messages": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Message"},
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "400": _error_response(
                        "A bad room name or query parameter", [INVALID_ROOM, BAD_REQUEST]
                    ),
                    **_COMMON_ERRORS,
                    "503": _error_response("The store is unavailable", [UNAVAILABLE]),
                },
            },
            "post": {
                "operationId": "postMessage",
                "summary": "Post a message to the room",
                "description": (
                    "Stored, then broadcast to the room's members as a `message` event, in "
                    "the room's order, and kept for connection state recovery. A repeated "
                    "`client_id` stores nothing and answers 200 with the first message's "
                    "id and ts."
                ),
                "requestBody": {
                    "required": True,
                    "description": f"A JSON object of at most {MAX_API_BODY} bytes",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/NewMessage"}}
                    },
                },
                "responses": {
                    "201": {
                        "description": "Stored and broadcast",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Posted"}}
                        },
                    },
                    "200": {
                        "description": "A client_id stored already: the first message",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Posted"}}
                        },
                    },
                    "400": _error_response(
                        "Bad JSON or a bad field",
                        ["bad_request", INVALID_ROOM, "invalid_message", "invalid_name"],
                    ),
                    **_COMMON_ERRORS,
                    "413": _error_response("The body is too large", [PAYLOAD_TOO_LARGE]),
                    "415": _error_response("Not application/json", [UNSUPPORTED_MEDIA_TYPE]),
                    "503": _error_response(
                        "The store is unavailable or the server is shutting down", [UNAVAILABLE]
                    ),
                },
            },
        },
        f"{API_PREFIX}/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "405": _COMMON_ERRORS["405"],
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": (
                    "The server's --api-token, or a JWT with role admin when the server "
                    "verifies tokens"
                ),
            }
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    }
                },
            },
            "Room": {
                "type": "object",
                "required": ["name", "count", "private"],
                "properties": {
                    "name": {"type": "string"},
                    "count": {"type": "integer", "minimum": 1},
                    "private": {
                        "type": "boolean",
                        "description": "a private room (--private-rooms)",
                    },
                },
            },
            "NewMessage": {
                "type": "object",
                "required": ["message"],
                "additionalProperties": False,
                "properties": {
                    "message": {"type": "string", "minLength": 1, "maxLength": MAX_MESSAGE},
                    "client_id": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_CLIENT_ID,
                        "description": "Deduplication key: a retry with it stores nothing",
                    },
                    "user": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_NAME,
                        "description": f"The name shown (default: {DEFAULT_API_USER!r})",
                    },
                },
            },
            "Posted": {
                "type": "object",
                "required": ["id", "ts"],
                "properties": {
                    "id": {"type": "integer", "description": "The message's id"},
                    "ts": {"type": "integer", "description": "When stored, ms since the epoch"},
                },
            },
            "Message": {
                "type": "object",
                "description": "A message as the chat's `message` event carries it",
                "required": ["id", "channel", "message", "user", "ts"],
                "properties": {
                    "id": {"type": "integer"},
                    "channel": {"type": "string"},
                    "message": {"type": "string"},
                    "user": {"type": "string"},
                    "ts": {"type": "integer"},
                    "client_id": {"type": "string"},
                    "user_id": {"type": "string"},
                    "deleted": {"type": "boolean"},
                },
            },
        },
    },
}
_OPENAPI_JSON = orjson.dumps(OPENAPI)

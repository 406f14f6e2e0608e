"""The public HTTP surface beside Socket.IO: routes, requests, responses, static files and
the request hooks that run before the Engine.IO handshake.

>>> from salas.http import Response
>>> @io.route("/healthz", methods=("GET",))
... def healthz(request):
...     return Response.json({"ok": True})
"""

from salas.http.hooks import RequestHook, RequestHooks, RequestRefused
from salas.http.request import Request
from salas.http.response import Response
from salas.http.router import RouteHandler, Router
from salas.http.security import CONTENT_SECURITY_POLICY, SECURITY_HEADERS
from salas.http.static import StaticFiles, find_client_dist

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "SECURITY_HEADERS",
    "Request",
    "RequestHook",
    "RequestHooks",
    "RequestRefused",
    "Response",
    "RouteHandler",
    "Router",
    "StaticFiles",
    "find_client_dist",
]

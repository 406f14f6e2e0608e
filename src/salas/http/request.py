"""`Request`: one parsed HTTP request, as route handlers and request hooks see it.

The type lives with the HTTP/1.1 connection that parses and answers it
(`salas.engine.http.HttpRequest`); this is its public name. What a handler reads:
`method`, `path` (percent-decoded), `raw_path` (as sent), `path_params` (what a route's
`{name}` segments matched), `query` (a dict), `query_string`, `headers`
(lower-case names, repeated headers joined with ", "), `raw_headers`, `body`,
`remote_address` (the peer), `client_address` (the client, behind trusted proxies).
"""

from __future__ import annotations

from salas.engine.http import HttpRequest as Request

__all__ = ["Request"]

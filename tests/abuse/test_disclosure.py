"""What the server tells strangers: no store password in any output, no file path in
`/healthz` unless `--healthz-details`, and security headers on every page it serves."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.abuse.abuse_support import http_session, serving
from tests.support.services import ROOT

USER_SECRET = "hunter2pw"
QUERY_SECRET = "s3cr3tq"


async def test_store_passwords_are_never_printed() -> None:
    """`salas serve --db postgresql://u:PW@...?password=PW2` against a closed port fails to
    start, saying so, without printing either password."""
    url = f"postgresql://u:{USER_SECRET}@127.0.0.1:1/x?password={QUERY_SECRET}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "salas",
        "serve",
        "--port",
        "0",
        "--db",
        url,
        "--log-level",
        "debug",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode(errors="replace")
    assert proc.returncode == 1, text
    assert "127.0.0.1:1" in text, text  # it does say which store it could not open
    assert USER_SECRET not in text, text
    assert QUERY_SECRET not in text, text


async def test_healthz_shows_no_paths_without_details(tmp_path: Path) -> None:
    """/healthz answers `ok` without the database's path; with --healthz-details it still
    answers `ok`."""
    async with serving(tmp_path) as server, http_session() as http:
        async with http.get(f"{server.url}healthz") as response:
            assert response.status == 200
            body = await response.text()
        assert json.loads(body)["ok"] is True
        assert str(tmp_path) not in body and "chat.db" not in body, body
    async with (
        serving(tmp_path, "--healthz-details") as server,
        http_session() as http,
        http.get(f"{server.url}healthz") as response,
    ):
        assert response.status == 200
        assert (await response.json())["ok"] is True


PAGES = ["/", "/tutorial/"]
# path -> its response's headers, names in lower case
Headers = dict[str, dict[str, str]]
FILES = ["/style.css", "/app.js", "/favicon.svg", "/socket.io/socket.io.js"]


@pytest.fixture(scope="module")
def headers_by_path(tmp_path_factory: pytest.TempPathFactory) -> Headers:
    """The response headers (names in lower case) of every page and file, from one server."""

    async def fetch() -> dict[str, dict[str, str]]:
        found = {}
        async with (
            serving(tmp_path_factory.mktemp("pages")) as server,
            http_session() as http,
        ):
            for path in PAGES + FILES:
                async with http.get(server.url + path.lstrip("/")) as response:
                    assert response.status == 200, path
                    found[path] = {k.lower(): v for k, v in response.headers.items()}
        return found

    return asyncio.run(fetch())


@pytest.mark.parametrize("path", PAGES)
def test_pages_carry_security_headers(
    headers_by_path: dict[str, dict[str, str]], path: str
) -> None:
    """The chat page and the tutorial page forbid framing, sniffing and referrers, and carry
    a Content-Security-Policy."""
    headers = headers_by_path[path]
    csp = headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, csp
    assert "default-src" in csp, csp
    assert headers.get("x-frame-options", "").upper() == "DENY"
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("referrer-policy") in ("no-referrer", "same-origin")


@pytest.mark.parametrize("path", FILES)
def test_static_files_are_not_sniffed(
    headers_by_path: dict[str, dict[str, str]], path: str
) -> None:
    """Static files carry `X-Content-Type-Options: nosniff` and a referrer policy."""
    headers = headers_by_path[path]
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("referrer-policy") in ("no-referrer", "same-origin")

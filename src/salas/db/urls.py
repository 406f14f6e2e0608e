"""Store URLs: which backend a URL names, what its options say, and how to show it safely.

``open_store`` and ``open_recovery_store`` accept the same URLs and choose their backend
with :func:`backend_of`; the SQLite and PostgreSQL stores (messages and recovery alike) read
their options with :func:`split_sqlite_url` and :func:`split_postgres_url`, so one URL
always means the same file or table to all of them.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from salas.db.errors import StoreError

__all__ = ["Backend", "backend_of", "redact", "split_postgres_url", "split_sqlite_url"]

Backend = Literal["memory", "sqlite", "postgresql"]

# "name:" at the start of something without "://": a URL with a typo ("memory:",
# "sqlite:x.db"), not a file name. One letter is a Windows drive ("C:\\salas.db").
_SCHEME_WITHOUT_SLASHES = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]+:")


# A query option whose name holds one of these carries a secret (libpq's ``password``,
# ``sslpassword``; whatever a driver adds, e.g. a token).
_SECRET_OPTION_WORDS = ("password", "secret", "token")
# ``key=value`` options of a query string, in raw (still percent-encoded) form.
_QUERY_OPTION = re.compile(r"(?P<key>[^&;=]*)=(?P<value>[^&;]*)")
# The password of a URL's userinfo, for URLs `urlsplit` refuses (e.g. a bad IPv6 host).
_USERINFO_PASSWORD = re.compile(r"^(?P<head>[^:/?#]*://[^:/?#@]*:)[^/?#]*@")


def _hide_query_secrets(url: str) -> str:
    """``url`` with the value of each query option that names a secret replaced by ``***``."""

    def hide(option: re.Match[str]) -> str:
        key = unquote(option["key"]).lower()
        if any(word in key for word in _SECRET_OPTION_WORDS):
            return f"{option['key']}=***"
        return option[0]

    head, sep, rest = url.partition("?")
    query, hash_sign, fragment = rest.partition("#")
    return head + sep + _QUERY_OPTION.sub(hide, query) + hash_sign + fragment


def redact(url: str) -> str:
    """``url`` without its passwords, fit for error messages and logs.

    Hides the userinfo password (``postgresql://user:***@host/db``) and the value of every
    query option that names a secret (``?password=***``, ``?sslpassword=***``); the rest of
    the URL is left as it was written. Never raises, even for a malformed URL.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # a malformed netloc (e.g. "[bad"): hide the password by pattern
        url = _USERINFO_PASSWORD.sub(r"\g<head>***@", url)
    else:
        if password is not None:
            host = parts.netloc.rpartition("@")[2]
            url = urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    return _hide_query_secrets(url)


def backend_of(url: str, supported: str) -> tuple[Backend, str]:
    """The backend ``url`` selects and the URL without surrounding blanks.

    A bare path (no ``://``) is a SQLite file. StoreError for an empty, malformed or
    unknown URL, naming ``supported`` (the URLs the caller accepts) and hiding passwords.
    """
    if not isinstance(url, str) or not url.strip():
        raise StoreError(f"empty store URL; supported: {supported}")
    url = url.strip()
    scheme, sep, _ = url.partition("://")
    if not sep:
        if _SCHEME_WITHOUT_SLASHES.match(url):
            raise StoreError(f"malformed store URL {redact(url)!r}; supported: {supported}")
        return "sqlite", url
    scheme = scheme.lower()
    if scheme == "memory":
        return "memory", url
    if scheme == "sqlite":
        return "sqlite", url
    if scheme in ("postgresql", "postgres"):
        return "postgresql", url
    raise StoreError(
        f"unknown store URL scheme {scheme!r} in {redact(url)!r}; supported: {supported}"
    )


def split_sqlite_url(url: str) -> tuple[str, str]:
    """``(path, table)`` of ``sqlite:///abs.db``, ``sqlite://relative.db`` (option ``?table=``)
    or a bare path, which is taken literally; StoreError for an unknown option."""
    if "://" not in url:
        return url, "messages"
    rest = url.partition("://")[2]
    path, _, query = rest.partition("?")
    table = "messages"
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key != "table":
            raise StoreError(
                f"unknown SQLite store option {key!r} in {redact(url)!r}; known: table"
            )
        table = value
    path = unquote(path)
    if path.startswith("//"):
        path = path[1:]  # sqlite:////abs.db, SQLAlchemy's spelling of an absolute path
    return path, table


def split_postgres_url(url: str) -> tuple[str, str, str]:
    """``(dsn, schema, table)``: salas' own query options (``schema``, ``table``) taken out,
    every other one left in the DSN for asyncpg."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in ("schema", "table"):
            ours[key] = value
        else:
            theirs.append((key, value))
    dsn = urlunsplit(parts._replace(query=urlencode(theirs)))
    return dsn, ours.get("schema", "public"), ours.get("table", "messages")

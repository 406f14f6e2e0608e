"""Store URLs (salas.db.urls): `redact` hides every password a URL can carry."""

from __future__ import annotations

import pytest

from salas.db.errors import StoreError
from salas.db.urls import redact, split_sqlite_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ana:hunter2@db:5432/chat", "postgresql://ana:***@db:5432/chat"),
        ("postgresql://:hunter2@db/chat", "postgresql://:***@db/chat"),
        ("postgresql://db/chat?password=hunter2", "postgresql://db/chat?password=***"),
        (
            "postgres://ana@db/chat?sslmode=require&sslpassword=hunter2&table=m",
            "postgres://ana@db/chat?sslmode=require&sslpassword=***&table=m",
        ),
        (
            "postgresql://ana:hunter2@db/chat?PASSWORD=hunter3#x",
            "postgresql://ana:***@db/chat?PASSWORD=***#x",
        ),
        ("postgresql://db/chat?pass%77ord=hunter2", "postgresql://db/chat?pass%77ord=***"),
        (
            "postgresql://db/chat?user=a;password=hunter2",
            "postgresql://db/chat?user=a;password=***",
        ),
        ("postgresql://db/chat?auth_token=hunter2", "postgresql://db/chat?auth_token=***"),
        (
            "postgresql://ana:hunter2@[::1/chat?password=hunter3",
            "postgresql://ana:***@[::1/chat?password=***",
        ),
    ],
)
def test_redact_hides_userinfo_and_query_passwords(url: str, shown: str) -> None:
    """Userinfo passwords and secret query options are replaced by *** (malformed URLs too)."""
    assert redact(url) == shown
    assert "hunter" not in redact(url)


@pytest.mark.parametrize(
    "url",
    [
        "memory://",
        "sqlite:///var/salas.db?table=messages",
        "sqlite://relative.db",
        "salas.db",
        "postgresql://ana@db:5432/chat?application_name=salas&schema=chat",
        "postgresql://db/chat?password",
    ],
)
def test_redact_leaves_urls_without_passwords_as_written(url: str) -> None:
    """A URL without a password comes back exactly as written."""
    assert redact(url) == url


def test_unknown_sqlite_option_error_hides_passwords() -> None:
    """The error naming an unknown SQLite option does not echo a password given with it."""
    with pytest.raises(StoreError) as info:
        split_sqlite_url("sqlite:///x.db?password=hunter2")
    assert "hunter2" not in str(info.value)

"""Public API docstrings: every public class, method and property of salas' API has one."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

import salas
from salas.adapter import (
    Adapter,
    AdapterFactory,
    BroadcastOptions,
    MemoryAdapter,
    RedisAdapter,
    RemoteSocket,
    redis_adapter,
)
from salas.asgi import ASGIApp
from salas.chat.announce import Announcer
from salas.chat.connection import Conn
from salas.chat.moderation import Moderation, log_action
from salas.http import (
    Request,
    RequestHooks,
    RequestRefused,
    Response,
    Router,
    StaticFiles,
    find_client_dist,
)
from salas.recovery import (
    LoggedPacket,
    MemoryRecoveryStore,
    PostgresRecoveryStore,
    Recovery,
    RecoveryOptions,
    RecoveryStore,
    RestoredSession,
    SessionRecord,
    SQLiteRecoveryStore,
    open_recovery_store,
)
from salas.server import Namespace
from salas.server.broadcast import BroadcastOperator, event_packet, room_names
from salas.server.errors import AckTimeout, ConnectionRefused, Disconnected
from salas.server.socket import Socket
from salas.server.tasks import TaskRegistry
from salas.store import (
    Ban,
    BanStore,
    InvalidInputError,
    MemoryBanStore,
    MemoryStore,
    MessageStore,
    PostgresBanStore,
    PostgresStore,
    SQLiteBanStore,
    SQLiteStore,
    StoredMessage,
    StoreError,
    open_ban_store,
    open_store,
)

CLASSES = [
    salas.Server,
    Namespace,
    TaskRegistry,
    Socket,
    BroadcastOperator,
    ConnectionRefused,
    AckTimeout,
    Disconnected,
    Adapter,
    AdapterFactory,
    BroadcastOptions,
    RemoteSocket,
    MemoryAdapter,
    RedisAdapter,
    MessageStore,
    StoredMessage,
    InvalidInputError,
    StoreError,
    MemoryStore,
    SQLiteStore,
    PostgresStore,
    Ban,
    BanStore,
    MemoryBanStore,
    SQLiteBanStore,
    PostgresBanStore,
    RecoveryStore,
    LoggedPacket,
    SessionRecord,
    MemoryRecoveryStore,
    SQLiteRecoveryStore,
    PostgresRecoveryStore,
    RecoveryOptions,
    RestoredSession,
    Recovery,
    Request,
    RequestHooks,
    RequestRefused,
    Response,
    Router,
    StaticFiles,
    Conn,
    Moderation,
    Announcer,
    ASGIApp,
]

FUNCTIONS = [
    open_store,
    open_ban_store,
    open_recovery_store,
    redis_adapter,
    event_packet,
    room_names,
    find_client_dist,
    log_action,
]


def _problem(doc: str | None) -> str | None:
    """What is wrong with ``doc``: missing, or not opening with a one-line summary."""
    if not doc or not doc.strip():
        return "no docstring"
    lines = inspect.cleandoc(doc).splitlines()
    if len(lines) > 1 and lines[1].strip():
        return "summary is not one line followed by a blank line"
    return None


def _function_of(member: Any) -> Callable[..., Any] | None:
    """The function behind a class member (method, property, classmethod); None for data."""
    if isinstance(member, property):
        return member.fget
    if isinstance(member, (classmethod, staticmethod)):
        return member.__func__
    if inspect.isfunction(member):
        return member
    return None


def undocumented(cls: type, home: str = "salas") -> list[str]:
    """Public members of ``cls``, and ``cls`` itself, lacking a proper docstring.

    Members are those defined (not inherited from outside ``home``) on a class of its MRO
    whose module is in package ``home``; each is checked where it is defined, so an
    override needs its own docstring.
    """
    found: list[str] = []
    problem = _problem(cls.__doc__)
    if problem is not None:
        found.append(f"{cls.__qualname__}: {problem}")
    seen: set[str] = set()
    for klass in cls.__mro__:
        module = klass.__module__
        if module != home and not module.startswith(home + "."):
            continue
        for name, member in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            function = _function_of(member)
            if function is None:
                continue
            problem = _problem(function.__doc__)
            if problem is not None:
                found.append(f"{klass.__qualname__}.{name}: {problem}")
    return found


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_public_class_is_documented(cls: type) -> None:
    """The class and each public method and property of it have a docstring with a summary."""
    assert undocumented(cls) == []


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
def test_public_function_is_documented(function: Callable[..., Any]) -> None:
    """Each public factory function has a docstring with a one-line summary."""
    assert _problem(function.__doc__) is None


class _Sample:
    """A class to check the checker with."""

    def documented(self) -> None:
        """Has one."""

    def bare(self) -> None:
        pass

    @property
    def bare_property(self) -> int:
        return 0

    def wrapped(self) -> None:
        """A summary that runs
        onto a second line."""

    def _private(self) -> None:
        pass


class _Override(_Sample):
    def documented(self) -> None:
        pass


def test_checker_finds_missing_and_malformed_docstrings() -> None:
    """The checker reports bare methods, bare properties and wrapped summaries, not private ones."""
    assert undocumented(_Sample, home=__name__) == [
        "_Sample.bare: no docstring",
        "_Sample.bare_property: no docstring",
        "_Sample.wrapped: summary is not one line followed by a blank line",
    ]


def test_checker_wants_overrides_documented() -> None:
    """An override without a docstring of its own is reported, and so is its bare class."""
    assert undocumented(_Override, home=__name__)[:2] == [
        "_Override: no docstring",
        "_Override.documented: no docstring",
    ]

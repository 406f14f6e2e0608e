"""Fixtures of the integration suite: the test application, run as a subprocess.

The same application exists twice, with identical behaviour: ``tests/apps/reference_app.js``
on the Node.js ``socket.io`` reference server and ``tests/apps/salas_app.py`` on salas, served
by salas' own HTTP server (target ``salas``) or through ``salas.asgi`` under uvicorn (target
``asgi``). ``SALAS_TEST_TARGETS`` (comma list, default ``salas``) chooses which ones every
test runs against: ``node,salas,asgi`` (what ``make test`` and CI use) runs each test on all
three, so the reference shows that each expectation is real Socket.IO behaviour.

A test asks for the ``app`` fixture; ``@pytest.mark.app_env(NAME=value, ...)`` starts it
with other settings (short heartbeats, small payload limit, ...). One process is kept per
(target, settings) for the whole session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.itest_support import KNOWN_TARGETS, AppProcess, start_app


def _targets() -> list[str]:
    raw = os.environ.get("SALAS_TEST_TARGETS", "salas")
    targets = [t.strip() for t in raw.split(",") if t.strip()]
    for t in targets:
        if t not in KNOWN_TARGETS:
            raise pytest.UsageError(f"SALAS_TEST_TARGETS: unknown target {t!r}")
    return targets


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this folder is marked `integration` (and `node` where it runs on Node)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)
            callspec = getattr(item, "callspec", None)
            on_node = callspec is not None and callspec.params.get("target") == "node"
            if on_node or item.path.name == "test_node_client.py":
                item.add_marker(pytest.mark.node)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        targets = _targets()
        marker = metafunc.definition.get_closest_marker("targets")
        if marker is not None:
            targets = [t for t in targets if t in marker.args]
        if not targets:
            targets = [pytest.param("none", marks=pytest.mark.skip(reason="target not selected"))]
        metafunc.parametrize("target", targets)


class AppRegistry:
    """One application process per (target, settings), shared by the session."""

    def __init__(self) -> None:
        self._apps: dict[tuple[str, tuple[tuple[str, str], ...]], AppProcess] = {}

    def get(self, target: str, env: dict[str, str]) -> AppProcess:
        key = (target, tuple(sorted(env.items())))
        app = self._apps.get(key)
        if app is None or not app.alive():
            app = start_app(target, env)
            self._apps[key] = app
        return app

    def close(self) -> None:
        for app in self._apps.values():
            app.stop()
        self._apps.clear()


@pytest.fixture(scope="session")
def app_registry() -> Iterator[AppRegistry]:
    registry = AppRegistry()
    yield registry
    registry.close()


@pytest.fixture
def app(
    request: pytest.FixtureRequest, app_registry: AppRegistry, target: str
) -> Iterator[AppProcess]:
    """The test application on ``target``, with the settings of the test's ``app_env`` marker."""
    env: dict[str, str] = {}
    for marker in reversed(list(request.node.iter_markers("app_env"))):
        env.update({k: str(v) for k, v in marker.kwargs.items()})
    application = app_registry.get(target, env)
    yield application
    if not application.alive():
        pytest.fail(
            f"the {target} test application died during the test:\n{application.tail()}",
            pytrace=False,
        )

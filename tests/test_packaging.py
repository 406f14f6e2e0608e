"""salas as Python users install it: the built wheel, in a fresh venv, with no checkout.

The wheel is built from a copy of the project (the checkout is left as it was), installed with
its core dependencies only, and run from a folder outside the checkout: no node_modules, no
SALAS_CLIENT_DIR. The chat page must still connect, with the browser client the wheel carries.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.request
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (  # noqa: F401  (fixtures are found by name)
    Chat,
    browser_fixture,
    new_context_fixture,
)

with contextlib.suppress(ImportError):  # without it the browser fixture skips (CI: fails)
    from playwright.sync_api import expect

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
# Not copied into the build tree: local state, and what the build itself must produce.
_NOT_SOURCES = {".git", ".venv", "node_modules", "build", "dist", "__pycache__", "salas.egg-info"}
_CLIENT_TARGET = ROOT / "src" / "salas" / "assets"


def _not_sources(folder: str, names: list[str]) -> set[str]:
    """copytree's ignore: local state, caches, databases and the client a build puts in src."""
    skipped = {n for n in names if n in _NOT_SOURCES or n.endswith("_cache") or ".db" in n}
    if Path(folder) == _CLIENT_TARGET.parent:
        skipped.add(_CLIENT_TARGET.name)
    return skipped


LISTENING = re.compile(r"listening on (http://\S+/)")


def pinned_client_version() -> str:
    """The socket.io-client version package-lock.json pins (the one the wheel must carry)."""
    lock = json.loads((ROOT / "package-lock.json").read_text())
    return str(lock["packages"]["node_modules/socket.io-client"]["version"])


def _run(argv: list[str | Path], cwd: Path, timeout: float = 300) -> str:
    """Run a command to completion; its output, or a failure that shows the output."""
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, argv))} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def _clean_env() -> dict[str, str]:
    """This environment without what would point the venv back at the checkout."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "SALAS_CLIENT_DIR", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this tree and its core dependencies only."""
    tmp = tmp_path_factory.mktemp("packaging")
    tree = tmp / "tree"
    shutil.copytree(ROOT, tree, ignore=_not_sources)
    if (ROOT / "node_modules").is_dir():  # else the build fetches the client with npm
        (tree / "node_modules").symlink_to(ROOT / "node_modules")
    wheels = tmp / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheels, tree], cwd=tmp)
    (wheel,) = wheels.glob("salas-*.whl")

    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    _run([env_dir / "bin" / "python", "-m", "pip", "install", "-q", wheel], cwd=tmp)
    shutil.rmtree(tree)  # nothing of the project is left but the installed wheel
    return env_dir


def test_wheel_carries_the_pinned_client_and_its_licence(installed: Path) -> None:
    """The installed package holds socket.io-client's bundle (the pinned version) and LICENSE."""
    out = _run(
        [
            installed / "bin" / "python",
            "-c",
            "import importlib.resources as r; "
            "print(r.files('salas') / 'assets' / 'socket.io-client')",
        ],
        cwd=installed.parent,
    )
    folder = Path(out.strip())
    assert folder.is_relative_to(installed)
    head = (folder / "socket.io.js").read_bytes()[:100]
    assert f"Socket.IO v{pinned_client_version()}\n".encode() in head
    assert (folder / "socket.io.min.js").is_file()
    assert "MIT License" in (folder / "LICENSE").read_text()


def test_core_install_imports_salas_without_optional_backends(installed: Path) -> None:
    """`import salas` works from the venv, outside the checkout; asyncpg and redis are absent."""
    python = installed / "bin" / "python"
    where = _run([python, "-c", "import salas; print(salas.__file__)"], cwd=installed.parent)
    assert Path(where.strip()).is_relative_to(installed)
    for backend in ("asyncpg", "redis"):
        probe = subprocess.run(
            [str(python), "-c", f"import {backend}"], cwd=installed.parent, capture_output=True
        )
        assert probe.returncode != 0, f"{backend} is installed without its extra"


class InstalledServer:
    """`salas serve` of the venv on a SQLite file and a free port, its log collected."""

    def __init__(self, env_dir: Path):
        work = env_dir.parent
        self.proc = subprocess.Popen(
            [
                str(env_dir / "bin" / "salas"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--db",
                f"sqlite:///{work}/chat.db",
                "--log-level",
                "info",
            ],
            cwd=work,
            env=_clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.url: str | None = None
        self._ready = threading.Event()
        # Reads to the end, so the server never blocks on a full pipe.
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            match = LISTENING.search(line)
            if match and self.url is None:
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()  # exited

    def wait_url(self, timeout: float = 30) -> str:
        self._ready.wait(timeout)
        if self.url is None:
            pytest.fail(f"no 'listening on' line from salas serve:\n{''.join(self.lines)}")
        return self.url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def served(installed: Path) -> Iterator[str]:
    """The URL of the installed `salas serve`; stopped (by its process) after the test."""
    server = InstalledServer(installed)
    try:
        yield server.wait_url()
    finally:
        server.stop()


def test_installed_server_serves_the_browser_client(served: str) -> None:
    """/socket.io/socket.io.js answers 200 with the JavaScript the wheel carries."""
    with urllib.request.urlopen(served + "socket.io/socket.io.js", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/javascript")
        body = response.read()
    assert f"Socket.IO v{pinned_client_version()}\n".encode() in body[:100]
    with urllib.request.urlopen(served + "tutorial/", timeout=10) as response:
        assert b"/socket.io/socket.io.js" in response.read()


@pytest.mark.browser
def test_installed_chat_page_works_in_chromium(served: str, new_context: Any) -> None:
    """Two people on the installed chat's page in Chromium: one says something, both see it."""
    alice = Chat(new_context(), served, "alice")
    bob = Chat(new_context(), served, "bob")
    alice.join("lobby")
    bob.join("lobby")
    alice.say("lobby", "hello from the wheel")
    expect(bob.message("lobby", "hello from the wheel")).to_have_count(1)

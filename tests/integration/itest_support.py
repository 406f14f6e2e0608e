"""Support code of the integration suite: the test application as a subprocess, and the
Node client scenario runner. (A plain module with a distinct name, so test files can import it
whatever other conftest.py files exist.)"""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.node import run_node
from tests.support.processes import free_port
from tests.support.services import ROOT, require_node

APPS = ROOT / "tests" / "apps"
JS_DIR = Path(__file__).resolve().parent / "js"
KNOWN_TARGETS = ("node", "salas", "asgi")
STARTUP_TIMEOUT = 20.0


@dataclass
class AppProcess:
    """A running test application."""

    target: str
    env: dict[str, str]
    proc: subprocess.Popen[str]
    port: int
    output: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=400))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        return "\n".join(list(self.output)[-60:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _command(target: str) -> list[str]:
    if target == "node":
        return [require_node(), str(APPS / "reference_app.js")]
    return [sys.executable, str(APPS / "salas_app.py")]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_app(target: str, env: dict[str, str]) -> AppProcess:
    port = free_port()
    full_env = dict(os.environ)
    full_env.update(env)
    full_env["PORT"] = str(port)
    if target == "asgi":
        full_env["SALAS_TEST_SERVER"] = "asgi"  # the salas application, through salas.asgi
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    proc = subprocess.Popen(
        _command(target),
        cwd=ROOT,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    app = AppProcess(target=target, env=env, proc=proc, port=port)
    ready = threading.Event()

    log_dir = os.environ.get("SALAS_TEST_APP_LOG_DIR")
    log_path = Path(log_dir) / f"{target}-{port}.log" if log_dir else None

    def pump() -> None:
        assert proc.stdout is not None
        log = log_path.open("a", encoding="utf-8") if log_path else None
        for line in proc.stdout:
            line = line.rstrip("\n")
            app.output.append(line)
            if log is not None:
                log.write(line + "\n")
                log.flush()
            if line.startswith("READY "):
                with contextlib.suppress(IndexError, ValueError):
                    app.port = int(line.split()[1])
                ready.set()
        ready.set()
        if log is not None:
            log.close()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    ready.wait(STARTUP_TIMEOUT)
    # READY may be printed just before the server listens: wait until it accepts.
    while time.monotonic() < deadline and app.alive() and not _port_open(app.port):
        time.sleep(0.05)
    if not app.alive() or not _port_open(app.port):
        app.stop()
        pytest.fail(
            f"the {target} test application did not start (env {env}):\n{app.tail()}",
            pytrace=False,
        )
    return app


async def run_js(script: str, *args: str, timeout: float = 30.0) -> Any:
    """Run ``tests/integration/js/<script>`` with node; return the JSON it prints last."""
    return await run_node(JS_DIR / script, *args, timeout=timeout)

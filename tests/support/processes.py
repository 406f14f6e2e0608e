"""Servers run as real processes: `salas serve` (and examples/seed.py) on a fixed loopback
port, which a test can stop with SIGTERM and start again on the same port.

`ServerProcess` is synchronous (Playwright's sync API owns the browser tests' thread);
asyncio tests use `astart`/`astop`, which run the same code in a worker thread so the event
loop (and any relay on it) keeps running meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.services import ROOT

__all__ = [
    "START_TIMEOUT",
    "SalasServe",
    "ServerProcess",
    "free_port",
    "salas_serve",
    "seed_example",
]

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Until `url` answers over HTTP (any status: the server is up), or RuntimeError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer from {url} in {timeout:.0f} s") from None
            time.sleep(0.05)


class ServerProcess:
    """A server run as a subprocess on a fixed loopback port; its output goes to `log_path`."""

    def __init__(
        self, argv: list[str], port: int, log_path: Path, ready_path: str = "/healthz"
    ) -> None:
        self.argv = argv
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self.log_path = log_path
        self.ready_path = ready_path
        self.env = dict(os.environ)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        """Start it and wait until it answers HTTP at `ready_path`; AssertionError if not."""
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_http(self.url + self.ready_path.lstrip("/"), self.proc, START_TIMEOUT)
        except RuntimeError as e:
            self.stop()
            raise AssertionError(f"{' '.join(self.argv)}: {e}\n{self.log_tail()}") from None
        return self

    def stop(self) -> int:
        """SIGTERM, then its exit status (0 when it shut down cleanly); killed if it hangs."""
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
                raise AssertionError(f"{self.argv[0]} did not stop:\n{self.log_tail()}") from None
        return proc.returncode

    async def astart(self) -> ServerProcess:
        """`start` without blocking the running event loop."""
        return await asyncio.to_thread(self.start)

    async def astop(self) -> int:
        """`stop` without blocking the running event loop."""
        return await asyncio.to_thread(self.stop)

    @property
    def log(self) -> str:
        """Everything the server wrote so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.splitlines()[-lines:])


class SalasServe(ServerProcess):
    """`salas serve` as a process; `db` is the store URL it was given."""

    def __init__(self, db: str, flags: tuple[str, ...], port: int, log_path: Path) -> None:
        argv = [sys.executable, "-m", "salas", "serve", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--db", db, *flags]
        super().__init__(argv, port, log_path)
        self.db = db


def salas_serve(
    tmp: Path, *flags: str, db: str | None = None, port: int | None = None
) -> SalasServe:
    """`salas serve` (not started yet) on `port` (a free one by default), with its own SQLite
    file under `tmp` unless `db` names another store; it logs to `tmp`/server-<port>.log."""
    port = port if port is not None else free_port()
    db = db if db is not None else f"sqlite:///{tmp}/chat.db"
    return SalasServe(db, flags, port, tmp / f"server-{port}.log")


def seed_example(tmp: Path) -> ServerProcess:
    """examples/seed.py, the tutorial's server translated to salas (not started yet)."""
    port = free_port()
    server = ServerProcess(
        [sys.executable, str(ROOT / "examples" / "seed.py")], port, tmp / "seed.log", "/"
    )
    server.env.update(PORT=str(port), HOST="127.0.0.1")
    return server

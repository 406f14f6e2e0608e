"""The servers under test: how to start each one, wait for it, measure and stop it."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.driver import BLAST, child_priority, taskset

__all__ = [
    "ROOT",
    "TARGETS",
    "Running",
    "Target",
    "Unavailable",
    "free_port",
    "host_info",
    "start",
]

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
NOFILE = 1 << 20  # servers must hold 100k sockets; root may raise the hard limit this far


class Unavailable(RuntimeError):
    """The server could not be started (missing, crashed, or never answered)."""


@dataclass(frozen=True)
class Target:
    """A server under test."""

    name: str
    label: str
    kind: str  # "relay" (the tutorial relay), "chat" (the full salas chat), "blast" (ceiling)
    argv: Callable[[int, dict[str, str]], list[str]]
    versions: Callable[[], dict[str, str]]
    env: dict[str, str] = field(default_factory=dict)
    # Pinned to the server CPU; False: on every core, shared with the load generator (the
    # `--workers` targets: their processes need more than one core).
    pinned: bool = True


def _pkg(*names: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _npm(*names: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        pj = ROOT / "node_modules" / name / "package.json"
        try:
            out[name] = str(json.loads(pj.read_text())["version"])
        except (OSError, ValueError, KeyError):
            out[name] = "not installed"
    return out


def _cmd_version(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else "?"


def _python_versions() -> dict[str, str]:
    return {"python": platform.python_version()}


def _salas_versions() -> dict[str, str]:
    out = _python_versions() | _pkg("salas", "httptools", "websockets", "orjson", "uvloop")
    rev = _cmd_version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    out["salas_git"] = rev
    try:  # the work tree is what runs: say whether it differs from that commit
        st = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src", "examples"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        changed = [ln for ln in st.stdout.splitlines() if ln.strip()]
        out["salas_work_tree"] = f"{len(changed)} changed files" if changed else "clean"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return out


def _asgi_versions() -> dict[str, str]:
    return _salas_versions() | _pkg("uvicorn")


def _chat_versions() -> dict[str, str]:
    return _salas_versions() | _pkg("asyncpg")


def _node_versions() -> dict[str, str]:
    return {"node": _cmd_version(["node", "--version"])} | _npm(
        "socket.io", "engine.io", "socket.io-adapter", "ws", "bufferutil", "utf-8-validate"
    )


def _pysio_versions() -> dict[str, str]:
    return _python_versions() | _pkg(
        "python-socketio",
        "python-engineio",
        "uvicorn",
        "uvloop",
        "httptools",
        "websockets",
        "aiohttp",
    )


def _blast_versions() -> dict[str, str]:
    return {"gcc": _cmd_version(["gcc", "-dumpfullversion"])}


CHAT_DB = ROOT / "bench/results/tmp/chat.db"


def _chat_argv(port: int, env: dict[str, str]) -> list[str]:
    salas = shutil.which("salas", path=str(Path(PYTHON).parent)) or "salas"
    db = env.get("SALAS_BENCH_DB") or f"sqlite:///{CHAT_DB}"
    return [salas, "serve", "--port", str(port), "--db", db]


def fresh_chat_db() -> None:
    """Remove the chat targets' SQLite file (and its WAL): every start measures an empty
    database, not whatever earlier runs left (a file of hundreds of MB after a few sweeps)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{CHAT_DB}{suffix}").unlink(missing_ok=True)


# -- scaling: one process with and without Redis, `--workers 1` against `--workers 2` --
BENCH_REDIS = os.environ.get("SALAS_BENCH_REDIS", "redis://127.0.0.1:6379/0")


def _cluster_argv(workers: int) -> Callable[[int, dict[str, str]], list[str]]:
    def argv(port: int, env: dict[str, str]) -> list[str]:
        # A prefix of its own per start: a run never hears an earlier run's broadcasts.
        prefix = f"salas-bench:{port}:{time.time_ns()}"
        extra = ["--redis", BENCH_REDIS, "--redis-prefix", prefix]
        return _chat_argv(port, env) + extra + ["--workers", str(workers)]

    return argv


def _cluster_versions() -> dict[str, str]:
    return _chat_versions() | _pkg("redis") | {"redis_server": _redis_version()}


def _redis_version() -> str:
    text = _cmd_version(["redis-server", "--version"])
    return text.split("v=")[1].split()[0] if "v=" in text else text


_CHAT_ENV = {
    "SALAS_MESSAGE_RATE": "0",
    "SALAS_INBOUND_RATE": "1000000",
    "SALAS_INBOUND_BURST": "1000000",
    "SALAS_MAX_CONNECTIONS": "0",
    "SALAS_MAX_CONNECTIONS_PER_IP": "0",
}


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "salas",
            "salas (seed relay)",
            "relay",
            # seed.py with connection limits off and the inbound budget raised past the
            # benchmark's rates (see bench/servers/salas_relay.py)
            lambda port, env: [PYTHON, str(ROOT / "bench" / "servers" / "salas_relay.py")],
            _salas_versions,
        ),
        Target(
            "salas-asgi",
            "salas through ASGI (uvicorn)",
            "relay",
            # the same seed.py and limits, io wrapped in salas.asgi.ASGIApp under uvicorn
            # (uvloop, httptools, websockets): bench/servers/salas_asgi_relay.py
            lambda port, env: [PYTHON, str(ROOT / "bench" / "servers" / "salas_asgi_relay.py")],
            _asgi_versions,
        ),
        Target(
            "salas-recovery",
            "salas relay, recovery on",
            "relay",
            lambda port, env: [PYTHON, str(ROOT / "bench" / "servers" / "salas_recovery_relay.py")],
            _salas_versions,
        ),
        Target(
            "salas-metrics",
            "salas relay, metrics on",
            "relay",
            lambda port, env: [PYTHON, str(ROOT / "bench" / "servers" / "salas_metrics_relay.py")],
            _salas_versions,
        ),
        Target(
            "salas-chat",
            "salas chat",
            "chat",
            _chat_argv,
            _chat_versions,
            # the chat's per-client event budget off, as for trusted clients: a single
            # sender must be able to offer more than 10 messages/s; the engine's inbound
            # budget (100 packets/s per connection) raised past the benchmark's rates; and
            # the connection limits off: every benchmark client comes from 127.0.0.1, and
            # the scenarios open more than the per-address (and total) defaults admit.
            env=_CHAT_ENV,
        ),
        Target(
            "salas-chat-redis",
            "salas chat, --redis (one process)",
            "chat",
            _cluster_argv(1),
            _cluster_versions,
            env=_CHAT_ENV,
        ),
        Target(
            "salas-chat-w1",
            "salas chat, --redis --workers 1, unpinned",
            "chat",
            _cluster_argv(1),
            _cluster_versions,
            env=_CHAT_ENV,
            pinned=False,
        ),
        Target(
            "salas-chat-w2",
            "salas chat, --redis --workers 2, unpinned",
            "chat",
            _cluster_argv(2),
            _cluster_versions,
            env=_CHAT_ENV,
            pinned=False,
        ),
        Target(
            "salas-chat-w2-hub",
            "salas chat, --workers 2 over the local hub (no Redis), unpinned",
            "chat",
            lambda port, env: [*_chat_argv(port, env), "--workers", "2"],
            _chat_versions,
            env=_CHAT_ENV,
            pinned=False,
        ),
        Target(
            "node",
            "Node socket.io",
            "relay",
            lambda port, env: ["node", str(ROOT / "bench" / "servers" / "node_relay.js")],
            _node_versions,
        ),
        Target(
            "pysio-uvicorn",
            "python-socketio (uvicorn)",
            "relay",
            lambda port, env: [
                PYTHON,
                str(ROOT / "bench" / "servers" / "pysocketio_relay.py"),
                "uvicorn",
            ],
            _pysio_versions,
        ),
        Target(
            "pysio-aiohttp",
            "python-socketio (aiohttp)",
            "relay",
            lambda port, env: [
                PYTHON,
                str(ROOT / "bench" / "servers" / "pysocketio_relay.py"),
                "aiohttp",
            ],
            _pysio_versions,
        ),
        Target(
            "blast",
            "blast (loadgen ceiling)",
            "blast",
            lambda port, env: [str(BLAST), "--port", str(port)],
            _blast_versions,
        ),
    )
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers_http(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(
                b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n"
                b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            return s.recv(16).startswith(b"HTTP/1.")
    except OSError:
        return False


def _child_setup() -> None:
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    child_priority()


class Running:
    """A started server: its pid, memory, CPU time, and a way to stop it."""

    def __init__(self, target: Target, port: int, proc: subprocess.Popen[bytes], log: Path):
        self.target = target
        self.port = port
        self.proc = proc
        self.pid = proc.pid
        self.log = log

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tree_cpu_s(self) -> float:
        """CPU seconds (user + system) of the server and every live process under it (the
        workers of `salas serve --workers`), read from /proc."""
        tick = os.sysconf("SC_CLK_TCK")
        children: dict[int, list[int]] = {}
        times: dict[int, float] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
            times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
        total, todo = 0.0, [self.pid]
        while todo:
            pid = todo.pop()
            total += times.get(pid, 0.0)
            todo.extend(children.get(pid, []))
        return total

    def rss_kb(self) -> int:
        """Resident set size of the server process, in KiB (VmRSS)."""
        for text in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if text.startswith("VmRSS:"):
                return int(text.split()[1])
        return -1

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start(
    target: Target,
    log_dir: Path,
    *,
    cpu: int | None = 0,
    timeout: float = 20.0,
    env_extra: dict[str, str] | None = None,
) -> Running:
    """Start ``target`` pinned to ``cpu`` and wait until it answers HTTP; raise Unavailable."""
    port = free_port()
    env = dict(os.environ)
    env.update(target.env)
    env.update(env_extra or {})
    env["PORT"] = str(port)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("NODE_ENV", "production")
    argv = target.argv(port, env)
    if target.kind == "chat" and "SALAS_BENCH_DB" not in env:
        fresh_chat_db()
    exe = argv[0]
    if not (Path(exe).exists() or shutil.which(exe)):
        raise Unavailable(f"{exe} not found")
    if target.name == "salas" and not (ROOT / "examples" / "seed.py").exists():
        raise Unavailable("examples/seed.py does not exist yet")
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{target.name}-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            taskset(cpu if target.pinned else None, argv),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup,
            start_new_session=True,
        )
    running = Running(target, port, proc, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Unavailable(
                f"exited with code {proc.returncode} during start-up:\n{running.log_tail()}"
            )
        if _answers_http(port):
            time.sleep(0.3)
            if proc.poll() is None:
                return running
        time.sleep(0.2)
    running.stop()
    raise Unavailable(
        f"no HTTP answer on port {port} within {timeout:.0f} s:\n{running.log_tail()}"
    )


def host_info() -> dict[str, Any]:
    """What machine and toolchain the figures come from."""
    cpu = "?"
    with contextlib.suppress(OSError):
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "gcc": _cmd_version(["gcc", "-dumpfullversion"]),
        "taskset": shutil.which("taskset") is not None,
        "nofile_limit": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }

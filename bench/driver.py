"""Build and drive the C load generator (``bench/loadgen/loadgen.c``) and blast server.

The load generator is one long-lived process per scenario: it keeps its connections while the
harness sends it one command per line on stdin and reads one JSON line back per command
(see the comment at the top of ``loadgen.c`` for the command language).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

__all__ = [
    "BLAST",
    "BLAST_SRC",
    "LOADGEN",
    "LOADGEN_SRC",
    "PRIORITY",
    "BuildError",
    "LoadGen",
    "LoadGenError",
    "build",
    "child_priority",
    "taskset",
]

HERE = Path(__file__).resolve().parent
LOADGEN_SRC = HERE / "loadgen" / "loadgen.c"
BLAST_SRC = HERE / "loadgen" / "blast.c"
WS_HEADER = HERE / "loadgen" / "ws.h"
LOADGEN = HERE / "loadgen" / "loadgen"
BLAST = HERE / "loadgen" / "blast"

Result = dict[str, Any]


class BuildError(RuntimeError):
    """gcc is missing or the C sources do not compile."""


class LoadGenError(RuntimeError):
    """The load generator died, timed out or answered something unreadable."""


def build(force: bool = False) -> tuple[Path, Path]:
    """Compile loadgen and blast with ``gcc -O2`` when missing or older than their sources."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    for src, out in ((LOADGEN_SRC, LOADGEN), (BLAST_SRC, BLAST)):
        newest = max(src.stat().st_mtime, WS_HEADER.stat().st_mtime)  # both include ws.h
        if not force and out.exists() and out.stat().st_mtime >= newest:
            continue
        if gcc is None:
            raise BuildError("gcc not found: the load generator is written in C")
        proc = subprocess.run(
            [gcc, "-O2", "-Wall", "-o", str(out), str(src)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise BuildError(f"gcc failed on {src.name}:\n{proc.stderr}")
    return LOADGEN, BLAST


PRIORITY = {"nice": 0}  # niceness for the servers and the generator (set by bench.run --nice)


def child_priority() -> None:
    """In a child before exec: take the benchmark's niceness (higher priority than other work
    on a shared machine, so that the two pinned processes are measured, not their neighbours)."""
    if PRIORITY["nice"]:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, PRIORITY["nice"])


def taskset(cpu: int | None, argv: list[str]) -> list[str]:
    """Prefix argv with ``taskset -c CPU`` when asked and available."""
    if cpu is None or shutil.which("taskset") is None or (os.cpu_count() or 1) <= cpu:
        return argv
    return ["taskset", "-c", str(cpu), *argv]


class LoadGen:
    """One running load generator: ``command("step ...")`` returns its JSON answer."""

    def __init__(
        self,
        port: int,
        *,
        server_pid: int | None = None,
        cpu: int | None = 1,
        src_addrs: int = 1,
        size: int = 48,
        read_size: int | None = None,
        inflight: int | None = None,
        binary: Path = LOADGEN,
    ) -> None:
        argv = [str(binary), "--port", str(port), "--src-addrs", str(src_addrs)]
        argv += ["--size", str(size)]
        if server_pid:
            argv += ["--pid", str(server_pid)]
        if read_size:
            argv += ["--read-size", str(read_size)]
        if inflight:
            argv += ["--inflight", str(inflight)]
        self.proc = subprocess.Popen(
            taskset(cpu, argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            preexec_fn=child_priority,
        )
        self._sel = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        hello = self._read(10.0)
        if hello.get("cmd") != "hello":
            raise LoadGenError(f"unexpected greeting {hello!r}")

    def _read(self, timeout: float) -> Result:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LoadGenError(f"no answer within {timeout:.0f} s")
            if not self._sel.select(left):
                continue
            text = self.proc.stdout.readline()
            if not text:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise LoadGenError(f"load generator exited ({self.proc.poll()}): {err[-500:]}")
            text = text.strip()
            if not text:
                continue
            try:
                value: Result = json.loads(text)
            except json.JSONDecodeError as exc:
                raise LoadGenError(f"unreadable answer {text[:200]!r}") from exc
            return value

    def command(self, line: str, timeout: float) -> Result:
        """Send one command and wait (at most ``timeout`` seconds) for its JSON answer."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError as exc:
            raise LoadGenError("load generator is gone") from exc
        return self._read(timeout)

    def close(self) -> None:
        """Ask it to quit; kill it if it does not within a few seconds."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._sel.close()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> LoadGen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Node.js scenario scripts (tests/*/js/*.js) run with npm's socket.io-client: each prints
JSON lines, the last one its result."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import ROOT, require_node

__all__ = ["run_node"]


async def run_node(script: Path, *args: str, timeout: float = 30.0) -> Any:
    """Run `script` with node (skipped, or failed under SALAS_REQUIRE_SERVICES=1, without
    node or socket.io-client); the JSON it prints last. Fails the test if it exits non-zero,
    prints nothing or runs past `timeout`."""
    node = require_node()
    proc = await asyncio.create_subprocess_exec(
        node,
        str(script),
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{script.name} {' '.join(args)} did not finish within {timeout}s")
    lines = [line for line in out.decode().splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        pytest.fail(
            f"{script.name} {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{out.decode()}\nstderr:\n{err.decode()}"
        )
    return json.loads(lines[-1])

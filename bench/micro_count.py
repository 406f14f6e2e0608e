"""Instructions per message of each step of the relay's path, counted by callgrind.

Wall-clock (and even CPU) times move by tens of percent on a shared machine; instruction
counts do not. Each mode of :mod:`bench.micro_relay` runs under ``valgrind --tool=callgrind``
twice, with ``--small`` and ``--large`` messages; the difference divided by the difference in
messages is that mode's instructions per message, with the setup (1000 clients opened and
joined) cancelled out. Steps are differences between modes, as in ``micro_relay``.

    .venv/bin/python -m bench.micro_count                  # chat-like, every mode (~3 min)
    .venv/bin/python -m bench.micro_count --scenario fanout
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.micro_relay import MODES

__all__ = ["count", "main"]

_COLLECTED = re.compile(r"Collected : (\d+)")


def count(scenario: str, mode: str, messages: int, loop: str) -> int:
    """Instructions callgrind counts for one run of one mode with `messages` messages."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind not found")
    argv = [sys.executable, "-m", "bench.micro_relay", "--scenario", scenario, "--only", mode]
    argv += ["--messages", str(messages), "--runs", "1"]
    if loop == "asyncio":
        argv.append("--asyncio")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        done = subprocess.run(
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],
        )
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"no count in valgrind's output: {done.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=("chat", "fanout"), default="chat")
    parser.add_argument("--small", type=int, default=500, help="messages in the first run")
    parser.add_argument("--large", type=int, default=2500, help="messages in the second run")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--full-only", action="store_true", help="only the whole path")
    args = parser.parse_args(argv)
    scale = 1 if args.scenario == "chat" else 100  # micro_relay divides fan-out's count
    modes = ("full",) if args.full_only else MODES
    jobs = [(mode, n * scale) for mode in modes for n in (args.small, args.large)]
    with ThreadPoolExecutor(args.jobs) as pool:
        counts = dict(
            zip(
                jobs,
                pool.map(lambda job: count(args.scenario, job[0], job[1], args.loop), jobs),
                strict=True,
            )
        )
    delta = args.large - args.small
    per = {
        mode: (counts[(mode, args.large * scale)] - counts[(mode, args.small * scale)]) / delta
        for mode in modes
    }
    if args.full_only:
        print(json.dumps({"scenario": args.scenario, "loop": args.loop, "per_mode": per}))
        return
    steps = {
        "websocket frame parse": per["full"] - per["ws"],
        "engine.io decode + budget": per["ws"] - per["engine"],
        "socket.io decode + namespace": per["engine"] - per["socket"],
        "handler dispatch, emit, deliver, flush, loop": per["socket"],
        "of which emit + deliver + flush": per["emit"],
        "of which deliver + flush": per["deliver"],
        "total (full path)": per["full"],
    }
    print(
        json.dumps(
            {
                "scenario": args.scenario,
                "loop": args.loop,
                "instructions_per_message": {k: round(v) for k, v in steps.items()},
                "per_mode": {k: round(v) for k, v in per.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

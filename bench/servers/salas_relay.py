"""The tutorial's relay (examples/seed.py) as benchmarked: limits set for one trusted machine.

Every benchmark client connects from 127.0.0.1, and the scenarios open more of them than
`Server`'s per-address default (1000) and, at the largest, its total (10,000) admit; those
clients are legitimate here, so the connection limits are off (as `--max-connections-per-ip 0
--max-connections 0` for `salas serve`). They also send far faster than a person: the fan-out
sender offers thousands of messages a second, past the default inbound budget of 100
packets/s per connection, so the budget is raised — explicit rather than off (0), so its
bookkeeping is still paid for in the numbers. seed.py itself is run as it is.
"""

import functools
import runpy
from pathlib import Path

import salas

BENCH_LIMITS = {
    "max_connections": 0,
    "max_connections_per_ip": 0,
    "inbound_rate": 1_000_000.0,
    "inbound_burst": 1_000_000,
}

salas.Server = functools.partial(salas.Server, **BENCH_LIMITS)  # type: ignore[misc,assignment]
runpy.run_path(
    str(Path(__file__).resolve().parents[2] / "examples" / "seed.py"), run_name="__main__"
)

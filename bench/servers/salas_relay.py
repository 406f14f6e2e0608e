"""The tutorial's relay (examples/seed.py) as benchmarked: without connection limits.

Every benchmark client connects from 127.0.0.1, and the scenarios open more of them than
`Server`'s per-address default (1000) and, at the largest, its total (10,000) admit; those
clients are legitimate here, so the limits are off (as `--max-connections-per-ip 0
--max-connections 0` for `salas serve`). seed.py itself is run as it is.
"""

import functools
import runpy
from pathlib import Path

import salas

salas.Server = functools.partial(  # type: ignore[misc,assignment]
    salas.Server, max_connections=0, max_connections_per_ip=0
)
runpy.run_path(
    str(Path(__file__).resolve().parents[2] / "examples" / "seed.py"), run_name="__main__"
)

"""The tutorial's relay (examples/seed.py) with the inbound budget raised for the benchmark.

The benchmark's clients all come from one machine and send far faster than a person: the
fan-out sender offers thousands of messages a second, past the default inbound budget of 100
packets/s per connection, which would drop them. The relay's code is not copied: seed.py is
run as it is, with `Server` defaulting to a budget no benchmark load reaches.
"""

import functools
import runpy
from pathlib import Path

import salas

# Explicit rather than off (0), so the budget's bookkeeping is still paid for in the numbers.
BENCH_BUDGET = {"inbound_rate": 1_000_000.0, "inbound_burst": 1_000_000}

salas.Server = functools.partial(salas.Server, **BENCH_BUDGET)  # type: ignore[misc,assignment]
runpy.run_path(
    str(Path(__file__).resolve().parents[2] / "examples" / "seed.py"), run_name="__main__"
)

"""The tutorial's relay (examples/seed.py) with Prometheus metrics on.

Benchmarked next to the plain relay, it shows what counting costs the fan-out: the same
limits as salas_relay.py, plus ``metrics=True`` (handler latency timed, /metrics served).
seed.py is run as it is.
"""

import functools
import runpy
from pathlib import Path

import salas

# Connection limits off and the inbound budget raised, as in salas_relay.py.
salas.Server = functools.partial(  # type: ignore[misc,assignment]
    salas.Server,
    metrics=True,
    max_connections=0,
    max_connections_per_ip=0,
    inbound_rate=1_000_000.0,
    inbound_burst=1_000_000,
)
runpy.run_path(
    str(Path(__file__).resolve().parents[2] / "examples" / "seed.py"), run_name="__main__"
)

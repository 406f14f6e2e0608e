"""The tutorial's relay (examples/seed.py) with connection state recovery on.

Benchmarked next to the plain relay, it shows what recovery costs: every broadcast gets an
offset and goes into the in-memory recovery log. The relay's code is not copied: seed.py is
run as it is, with `Server` defaulting to recovery on.
"""

import functools
import runpy
from pathlib import Path

import salas

# Connection limits off and the inbound budget raised, as in salas_relay.py.
salas.Server = functools.partial(  # type: ignore[misc,assignment]
    salas.Server,
    connection_state_recovery=True,
    max_connections=0,
    max_connections_per_ip=0,
    inbound_rate=1_000_000.0,
    inbound_burst=1_000_000,
)
runpy.run_path(
    str(Path(__file__).resolve().parents[2] / "examples" / "seed.py"), run_name="__main__"
)

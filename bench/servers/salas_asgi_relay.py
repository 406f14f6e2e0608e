"""The tutorial's relay (examples/seed.py) served through salas.asgi under uvicorn.

The same seed.py and benchmark limits as bench/servers/salas_relay.py; only `io.run` differs:
the server is wrapped in `salas.asgi.ASGIApp` and run by uvicorn on uvloop, httptools and
websockets (uvicorn's "websockets-sansio" protocol), with uvicorn's own websocket pings off
(Engine.IO has its heartbeat) and permessage-deflate off (as on salas' server: compressing
each recipient's copy of a broadcast would undo encoding it once).
"""

import functools
import runpy
from pathlib import Path
from typing import Any

import uvicorn

import salas
from salas.asgi import ASGIApp

BENCH_LIMITS = {
    "max_connections": 0,
    "max_connections_per_ip": 0,
    "inbound_rate": 1_000_000.0,
    "inbound_burst": 1_000_000,
}


class AsgiServer(salas.Server):
    def run(self, host: str = "127.0.0.1", port: int = 8000) -> None:
        uvicorn.run(
            ASGIApp(self),
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            ws="websockets-sansio",
            ws_ping_interval=None,
            ws_per_message_deflate=False,
            lifespan="on",
            log_level="warning",
            backlog=4096,
        )


def _server(**kwargs: Any) -> AsgiServer:
    return AsgiServer(**{**kwargs, **BENCH_LIMITS})


salas.Server = functools.partial(_server)  # type: ignore[misc,assignment]
runpy.run_path(
    str(Path(__file__).resolve().parents[2] / "examples" / "seed.py"), run_name="__main__"
)

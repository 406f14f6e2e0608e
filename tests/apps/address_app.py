"""A salas Server that tells each client the address it saw (``socket.handshake["address"]``).

tests/integration/test_nginx.py runs it behind nginx to show that `forwarded_allow_ips` takes
the client's address from the proxy's X-Forwarded-For. Environment: PORT, FORWARDED_ALLOW_IPS
(a comma list, as `salas serve --forwarded-allow-ips`).
"""

from __future__ import annotations

import os
from typing import Any

from salas import Server

io = Server(forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", ""))


@io.on("connection")
async def connection(socket: Any) -> None:
    @socket.on("address")
    async def address() -> dict[str, str]:
        return {"address": socket.handshake["address"], "transport": socket.conn.transport}


io.run(host="127.0.0.1", port=int(os.environ["PORT"]))

"""Public API: Server, Namespace, Socket, BroadcastOperator, acks, middleware, rooms."""

from salas.recovery import RecoveryOptions
from salas.server.broadcast import BroadcastOperator
from salas.server.errors import AckTimeout, ConnectionRefused, Disconnected
from salas.server.namespace import Namespace
from salas.server.server import Server
from salas.server.socket import Socket

__all__ = [
    "AckTimeout",
    "BroadcastOperator",
    "ConnectionRefused",
    "Disconnected",
    "Namespace",
    "RecoveryOptions",
    "Server",
    "Socket",
]

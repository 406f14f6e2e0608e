"""salas: a real-time chat-room server for Python on the Socket.IO protocol."""

from salas.server import (
    AckTimeout,
    BroadcastOperator,
    ConnectionRefused,
    Disconnected,
    Namespace,
    RecoveryOptions,
    Server,
    Socket,
)

__version__ = "0.1.0"
__all__ = [
    "AckTimeout",
    "BroadcastOperator",
    "ConnectionRefused",
    "Disconnected",
    "Namespace",
    "RecoveryOptions",
    "Server",
    "Socket",
    "__version__",
]

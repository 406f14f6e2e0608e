"""salas: a real-time chat-room server for Python on the Socket.IO protocol."""

from importlib.metadata import PackageNotFoundError, version

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

try:
    # One home for the version: pyproject.toml, read back from the installed metadata.
    __version__ = version("salas")
except PackageNotFoundError:  # a source tree on sys.path, never installed
    __version__ = "0+unknown"
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

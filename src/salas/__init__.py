"""salas: a real-time chat-room server for Python on the Socket.IO protocol."""

__version__ = "0.1.0"
__all__ = ["__version__"]

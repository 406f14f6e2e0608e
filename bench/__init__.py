"""Benchmarks: salas against the Node.js socket.io server and python-socketio (see README)."""

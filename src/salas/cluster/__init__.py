"""Past one process: `salas serve --workers N` on one machine (`salas.cluster.workers`)."""

from salas.cluster.workers import Supervisor, WorkerLink, owner_of, parse_workers, sid_prefix

__all__ = ["Supervisor", "WorkerLink", "owner_of", "parse_workers", "sid_prefix"]

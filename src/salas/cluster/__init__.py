"""Several `salas serve` processes as one chat: shared over Redis (and the --db database).

`salas.cluster.workers` runs `salas serve --workers N` on one machine (a parent routing each
request by its sid to the worker that owns the session); `salas.cluster.hub` is the Redis the
parent serves its workers in memory when there is no --redis (`hub_commands` its keys and
commands, `hub_scripts` its twins of salas' Lua scripts); `salas.cluster.node` is a process's
place in the cluster (id, heartbeat, dead nodes, the cluster channel);
`salas.cluster.presence` the chat's presence shared by every node; `salas.cluster.offsets`
the cluster-wide offsets of connection state recovery.
"""

from salas.cluster.workers import Supervisor, WorkerLink, owner_of, parse_workers, sid_prefix

__all__ = ["Supervisor", "WorkerLink", "owner_of", "parse_workers", "sid_prefix"]

"""Several `salas serve` processes as one chat: shared over Redis (and the --db database).

`salas.cluster.node` is a process's place in the cluster (id, heartbeat, dead nodes, the
cluster channel); `salas.cluster.presence` the chat's presence shared by every node;
`salas.cluster.offsets` the cluster-wide offsets of connection state recovery.
"""

"""Past one process: what several salas processes (workers of one machine, or machines)
share over Redis and a common database. See docs/cluster.md."""

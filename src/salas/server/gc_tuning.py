"""The garbage collector's settings for a process that serves (``io.run``, ``salas serve``).

A chat server allocates several container objects per message (futures, tuples, the
packet's lists and dicts), so CPython's default thresholds (a young collection every 700
net allocations, a full one every 100 young ones) run the collector thousands of times a
second, and every full collection walks every object the process holds: the modules'
functions and classes as well as each connection's session, socket and timers.
Measured with ``bench/micro_chat.py`` (1000 clients, 4000 messages/s, SQLite), the
collector's share was 1 to 16 µs per message depending on when full collections fell.

:func:`tune_for_serving` moves everything alive at start-up (the imported code, the
configuration) out of the collector's sight with :func:`gc.freeze` — it is never garbage —
and raises the young generation's threshold, so a collection runs about once per few
thousand messages and looks only at what the serving made. Reference cycles are still
collected; they wait a little longer.
"""

from __future__ import annotations

import gc

__all__ = ["SERVING_THRESHOLDS", "tune_for_serving"]

# (young, middle, old): a young collection per 20,000 net allocations (a few milliseconds of
# work at most), the older generations after 20 of the one below.
SERVING_THRESHOLDS = (20_000, 20, 20)


def tune_for_serving() -> None:
    """Collect once, freeze what survives, and set :data:`SERVING_THRESHOLDS`.

    Called once by :func:`salas.server.server.run_loop` before the server starts; harmless to
    call again (later calls freeze what was made since).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_THRESHOLDS)

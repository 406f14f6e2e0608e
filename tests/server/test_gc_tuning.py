"""salas.server.gc_tuning: the collector's settings for serving, applied by run_loop."""

from __future__ import annotations

import json
import subprocess
import sys

from salas.server.gc_tuning import SERVING_THRESHOLDS

_PROGRAM = """
import gc, json, weakref
from salas.server.server import run_loop

before = gc.get_freeze_count()

class Node:
    pass

async def main():
    # A reference cycle made while serving is still collected.
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    return {"threshold": gc.get_threshold(), "frozen_before": before,
            "frozen": gc.get_freeze_count(), "cycle_collected": gone() is None}

print(json.dumps(run_loop(main())))
"""


def test_run_loop_freezes_start_up_objects_and_raises_thresholds() -> None:
    """run_loop sets the serving thresholds, freezes what start-up made, and cycles made
    afterwards are still collected (in a fresh interpreter: the settings are global)."""
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM], capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(done.stdout)
    assert tuple(seen["threshold"]) == SERVING_THRESHOLDS
    assert seen["frozen_before"] == 0
    assert seen["frozen"] > 10_000  # the imported modules' objects at least
    assert seen["cycle_collected"] is True

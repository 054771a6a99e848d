"""How the controller process uses Python's garbage collector.

The controller holds millions of long-lived objects (compiled rules, the switches' mirrors,
policies). The cyclic collector scans them again and again as they are created: a full build of
50,000 policies took twice as long, and the collector's passes held the interpreter for up to
440 ms at a time, long enough to stall the event loop that serves switches and operators. vtap's
data structures hold no reference cycles (reference counting frees them), so a full build runs
with the collector off, and what it built is then frozen: later collections skip it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

GC_THRESHOLDS = (10_000, 10, 10)  # young collections of ~10,000 objects: a few ms each


def tune() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


@contextmanager
def quiet_gc() -> Iterator[None]:
    """No cyclic collection inside; afterwards everything alive is frozen (permanent
    generation). Not reentrant: one full build at a time (rounds run one at a time)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was:
            gc.enable()

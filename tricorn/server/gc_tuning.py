"""The cyclic garbage collector of a serving process: what exists once the app has started is
frozen (the ``gc_freeze`` setting), so that full collections walk only what serving made.

A loaded app (its modules, classes, routes, framework and server objects) is tens of
thousands of tracked objects for a hello world and far more for a real one; without this,
every full collection walks all of them while every connection of the process waits.
"""

from __future__ import annotations

import gc
import logging

from tricorn.config import Config
from tricorn.constants import ERROR_LOGGER

error_log = logging.getLogger(ERROR_LOGGER)


def freeze_after_startup(config: Config) -> int:
    """With ``config.gc_freeze``: collect once (so start-up garbage is freed, not kept
    forever), then ``gc.freeze()``. Returns how many objects are frozen (0 when off).

    Call it in a process tricorn started (the CLI, a worker), once the app's lifespan
    startup is done and before the first connection is served."""
    if not config.gc_freeze:
        return 0
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    error_log.debug("gc_freeze: %d objects frozen after start-up", frozen)
    return frozen

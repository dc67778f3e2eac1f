"""An app that reports what the cyclic collector sees: how many objects are frozen, and
whether an object its lifespan startup made is among them (tests/integration/test_gc_freeze.py)."""

from __future__ import annotations

import gc
import json
from typing import Any

#: Made by the lifespan startup, kept for the whole process.
STARTED: dict[str, list[int]] = {}


def _tracked_by_a_generation(target: object) -> bool:
    """Whether ``target`` is in generation 0, 1 or 2 (a frozen object is in none of them)."""
    return any(candidate is target for candidate in gc.get_objects())


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                STARTED["marker"] = [1, 2, 3]
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    made_now = [4, 5, 6]
    report = {
        "freeze_count": gc.get_freeze_count(),
        "startup_object_frozen": not _tracked_by_a_generation(STARTED["marker"]),
        "request_object_frozen": not _tracked_by_a_generation(made_now),
        "gc_enabled": gc.isenabled(),
    }
    body = json.dumps(report).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})

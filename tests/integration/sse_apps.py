"""An endless sse-starlette event stream, for the shutdown and rolling-restart tests.

``GET /events`` sends ``data: tick N`` every 50 ms for ever; the generator prints a line to
stderr when it is closed, so a test can see the stream ended in the app, not only on the
wire. Any other path answers ``ok PID``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator

import anyio
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


async def events(request: Request) -> Response:
    async def ticks() -> AsyncIterator[dict[str, str]]:
        count = 0
        try:
            while True:
                count += 1
                yield {"data": f"tick {count}"}
                await anyio.sleep(0.05)
        finally:
            print(f"sse stream closed in worker {os.getpid()}", file=sys.stderr, flush=True)

    return EventSourceResponse(ticks())


async def home(request: Request) -> Response:
    return PlainTextResponse(f"ok {os.getpid()}")


app = Starlette(routes=[Route("/events", events), Route("/", home)])

"""A small Starlette app (see common.py for the routes the tests expect)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from tests.e2e.apps import common


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": common.GREETING}
    common.on_shutdown()


async def json_endpoint(request: Request) -> Response:
    return JSONResponse({"framework": "starlette", "ok": True})


async def item(request: Request) -> Response:
    return JSONResponse(
        {"item_id": request.path_params["item_id"], "q": request.query_params.get("q")}
    )


async def upload(request: Request) -> Response:
    async with request.form() as form:
        file = form["file"]
        assert isinstance(file, UploadFile)
        data = await file.read()
        return JSONResponse(common.upload_summary(file.filename, data))


async def _chunks() -> AsyncIterator[bytes]:
    for chunk in common.STREAM_CHUNKS:
        yield chunk


async def stream(request: Request) -> Response:
    return StreamingResponse(_chunks(), media_type="text/plain")


async def _events() -> AsyncIterator[bytes]:
    for index, data in enumerate(common.SSE_EVENTS):
        yield common.sse_frame(index, data)


async def sse(request: Request) -> Response:
    return StreamingResponse(_events(), media_type="text/event-stream")


async def _forever() -> AsyncIterator[bytes]:
    common.ACTIVE_STREAMS["active"] += 1
    try:
        index = 0
        while True:
            yield common.sse_frame(index, "tick")
            index += 1
            await anyio.sleep(common.TICK)
    finally:
        common.ACTIVE_STREAMS["active"] -= 1


async def sse_forever(request: Request) -> Response:
    return StreamingResponse(_forever(), media_type="text/event-stream")


async def sse_active(request: Request) -> Response:
    return JSONResponse(common.ACTIVE_STREAMS)


async def state(request: Request) -> Response:
    return JSONResponse({"greeting": request.state.greeting})


async def browser(request: Request) -> Response:
    return HTMLResponse(common.BROWSER_PAGE)


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "whoami":
            await websocket.send_text(websocket.scope["http_version"])
        elif message.get("text") is not None:
            await websocket.send_text("echo: " + message["text"])
        elif message.get("bytes") is not None:
            await websocket.send_bytes(message["bytes"])


app = Starlette(
    routes=[
        Route("/json", json_endpoint),
        Route("/items/{item_id:int}", item),
        Route("/upload", upload, methods=["POST"]),
        Route("/stream", stream),
        Route("/sse", sse),
        Route("/sse-forever", sse_forever),
        Route("/sse-active", sse_active),
        Route("/state", state),
        Route("/browser", browser),
        WebSocketRoute("/ws", echo),
        Mount("/static", StaticFiles(directory=common.STATIC_DIR), name="static"),
    ],
    lifespan=lifespan,
)

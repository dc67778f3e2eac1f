"""A small FastAPI app (see common.py for the routes the tests expect)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, File, Request, UploadFile, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from tests.e2e.apps import common


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": common.GREETING}
    common.on_shutdown()


app = FastAPI(lifespan=lifespan)
app.mount("/static", StaticFiles(directory=common.STATIC_DIR), name="static")


@app.get("/json")
async def json_endpoint() -> dict[str, Any]:
    return {"framework": "fastapi", "ok": True}


@app.get("/items/{item_id}")
async def item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@app.post("/upload")
async def upload(file: UploadFile = File(...)) -> dict[str, object]:  # noqa: B008
    return common.upload_summary(file.filename, await file.read())


async def _chunks() -> AsyncIterator[bytes]:
    for chunk in common.STREAM_CHUNKS:
        yield chunk


@app.get("/stream")
async def stream() -> StreamingResponse:
    return StreamingResponse(_chunks(), media_type="text/plain")


async def _events() -> AsyncIterator[bytes]:
    for index, data in enumerate(common.SSE_EVENTS):
        yield common.sse_frame(index, data)


@app.get("/sse")
async def sse() -> StreamingResponse:
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


@app.get("/sse-forever")
async def sse_forever() -> StreamingResponse:
    return StreamingResponse(_forever(), media_type="text/event-stream")


@app.get("/sse-active")
async def sse_active() -> dict[str, int]:
    return common.ACTIVE_STREAMS


@app.get("/state")
async def state(request: Request) -> dict[str, Any]:
    return {"greeting": request.state.greeting}


@app.get("/browser", response_class=HTMLResponse)
async def browser() -> str:
    return common.BROWSER_PAGE


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
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
    except WebSocketDisconnect:
        return

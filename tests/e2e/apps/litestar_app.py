"""A small Litestar app (see common.py for the routes the tests expect)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from typing import Annotated, Any, cast

import anyio
from litestar import Litestar, MediaType, Request, get, post, websocket
from litestar.connection import WebSocket
from litestar.datastructures import State, UploadFile
from litestar.enums import RequestEncodingType
from litestar.exceptions import WebSocketDisconnect
from litestar.params import Body
from litestar.response import ServerSentEvent, ServerSentEventMessage, Stream
from litestar.static_files import create_static_files_router

from tests.e2e.apps import common


def startup(app: Litestar) -> None:
    app.state.greeting = common.GREETING


def shutdown(app: Litestar) -> None:
    common.on_shutdown()


@get("/json")
async def json_endpoint() -> dict[str, Any]:
    return {"framework": "litestar", "ok": True}


@get("/items/{item_id:int}")
async def item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@post("/upload", status_code=200)
async def upload(
    data: Annotated[dict[str, UploadFile], Body(media_type=RequestEncodingType.MULTI_PART)],
) -> dict[str, object]:
    file = data["file"]
    return common.upload_summary(file.filename, await file.read())


async def _chunks() -> AsyncIterator[bytes]:
    for chunk in common.STREAM_CHUNKS:
        yield chunk


@get("/stream")
async def stream() -> Stream:
    return Stream(_chunks(), media_type="text/plain")


async def _events() -> AsyncIterator[ServerSentEventMessage]:
    for index, data in enumerate(common.SSE_EVENTS):
        yield ServerSentEventMessage(data=data, event="tick", id=str(index))


@get("/sse")
async def sse() -> ServerSentEvent:
    return ServerSentEvent(_events())


async def _forever() -> AsyncIterator[ServerSentEventMessage]:
    common.ACTIVE_STREAMS["active"] += 1
    try:
        index = 0
        while True:
            yield ServerSentEventMessage(data="tick", event="tick", id=str(index))
            index += 1
            await anyio.sleep(common.TICK)
    finally:
        common.ACTIVE_STREAMS["active"] -= 1


@get("/sse-forever")
async def sse_forever() -> ServerSentEvent:
    return ServerSentEvent(_forever())


@get("/sse-active")
async def sse_active() -> dict[str, int]:
    # When the client leaves while Litestar's stream is in send(), Litestar does not close
    # the async generator it was reading: the generator's `finally` runs when the generator
    # is freed, and it is held by a reference cycle (anyio's task_done keeps the cancelled
    # task's CancelledError in a local on asyncio; Litestar's sync_to_thread outcome on
    # trio). When the cyclic collector next runs depends on Python's allocation counters,
    # not on the server (with the collector off, 4 of 40 left streams never ended here; 0
    # of 20 on Starlette, FastAPI and Quart). Collect before counting, so that what is
    # counted is streams still alive, not garbage not yet collected.
    gc.collect()
    return common.ACTIVE_STREAMS


@get("/state")
async def state(request: Request[Any, Any, State]) -> dict[str, Any]:
    return {"greeting": request.app.state.greeting}


@get("/browser", media_type=MediaType.HTML)
async def browser() -> str:
    return common.BROWSER_PAGE


@websocket("/ws")
async def echo(socket: WebSocket[Any, Any, Any]) -> None:
    await socket.accept()
    try:
        while True:
            message = cast(dict[str, Any], await socket.receive())
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") == "whoami":
                await socket.send_text(str(socket.scope["http_version"]))
            elif message.get("text") is not None:
                await socket.send_text("echo: " + str(message["text"]))
            elif message.get("bytes") is not None:
                await socket.send_bytes(bytes(message["bytes"]))
    except WebSocketDisconnect:
        return


app = Litestar(
    route_handlers=[
        json_endpoint,
        item,
        upload,
        stream,
        sse,
        sse_forever,
        sse_active,
        state,
        browser,
        echo,
        create_static_files_router(path="/static", directories=[common.STATIC_DIR]),
    ],
    on_startup=[startup],
    on_shutdown=[shutdown],
    request_max_body_size=64 * 1024 * 1024,  # the default (10 MB) is below the 20 MiB test
)

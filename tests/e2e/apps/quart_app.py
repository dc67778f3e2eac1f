"""A small Quart app (see common.py for the routes the tests expect), with HTTP/2 push:
GET /push pushes /static/hello.txt before it answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from quart import Quart, Response, ResponseReturnValue, make_push_promise, request, websocket

from tests.e2e.apps import common

app = Quart(__name__, static_folder=str(common.STATIC_DIR), static_url_path="/static")
app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024  # the default (16 MiB) is below 20 MiB
state: dict[str, Any] = {}


@app.before_serving
async def startup() -> None:
    state["greeting"] = common.GREETING


@app.after_serving
async def shutdown() -> None:
    common.on_shutdown()


@app.get("/json")
async def json_endpoint() -> ResponseReturnValue:
    return {"framework": "quart", "ok": True}


@app.get("/items/<int:item_id>")
async def item(item_id: int) -> ResponseReturnValue:
    return {"item_id": item_id, "q": request.args.get("q")}


@app.post("/upload")
async def upload() -> ResponseReturnValue:
    file = (await request.files)["file"]
    return common.upload_summary(file.filename, file.read())


@app.get("/stream")
async def stream() -> ResponseReturnValue:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in common.STREAM_CHUNKS:
            yield chunk

    return Response(chunks(), content_type="text/plain")


@app.get("/sse")
async def sse() -> ResponseReturnValue:
    async def events() -> AsyncIterator[bytes]:
        for index, data in enumerate(common.SSE_EVENTS):
            yield common.sse_frame(index, data)

    return Response(
        events(), content_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


@app.get("/sse-forever")
async def sse_forever() -> ResponseReturnValue:
    async def forever() -> AsyncIterator[bytes]:
        common.ACTIVE_STREAMS["active"] += 1
        try:
            index = 0
            while True:
                yield common.sse_frame(index, "tick")
                index += 1
                await asyncio.sleep(common.TICK)
        finally:
            common.ACTIVE_STREAMS["active"] -= 1

    return Response(forever(), content_type="text/event-stream")


@app.get("/sse-active")
async def sse_active() -> ResponseReturnValue:
    return common.ACTIVE_STREAMS


@app.get("/state")
async def get_state() -> ResponseReturnValue:
    return {"greeting": state["greeting"]}


@app.get("/push")
async def push() -> ResponseReturnValue:
    await make_push_promise("/static/hello.txt")
    return "pushed /static/hello.txt"


@app.get("/browser")
async def browser() -> ResponseReturnValue:
    return common.BROWSER_PAGE


@app.websocket("/ws")
async def echo() -> None:
    while True:
        data = await websocket.receive()
        if data == "whoami":
            await websocket.send(websocket.http_version)
        elif isinstance(data, str):
            await websocket.send("echo: " + data)
        else:
            await websocket.send(data)

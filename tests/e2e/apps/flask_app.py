"""A small Flask app, served as WSGI (see common.py for the routes the tests expect).

WSGI has no WebSocket and no lifespan, so /ws and /state are not here; /stream uses
``stream_with_context`` and ends with a line made from the request inside the generator,
which only works while the request context is kept for the streamed body.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

from flask import Flask, Response, jsonify, request, stream_with_context

from tests.e2e.apps import common

app = Flask(__name__, static_folder=str(common.STATIC_DIR), static_url_path="/static")


@app.get("/json")
def json_endpoint() -> Response:
    return jsonify({"framework": "flask", "ok": True})


@app.get("/items/<int:item_id>")
def item(item_id: int) -> Response:
    return jsonify({"item_id": item_id, "q": request.args.get("q")})


@app.post("/upload")
def upload() -> Response:
    uploaded = request.files["file"]
    return jsonify(common.upload_summary(uploaded.filename, uploaded.read()))


@app.get("/stream")
def stream() -> Response:
    def generate() -> Iterator[bytes]:
        yield from common.STREAM_CHUNKS
        yield f"{request.method} {request.path}\n".encode()  # needs the request context

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.get("/sse")
def sse() -> Response:
    def events() -> Iterator[bytes]:
        for index, data in enumerate(common.SSE_EVENTS):
            yield common.sse_frame(index, data)

    return Response(events(), mimetype="text/event-stream")


@app.get("/sse-forever")
def sse_forever() -> Response:
    """Endless; WSGI's ``close()`` on the iterable (called when the client has gone) closes
    the generator, whose ``finally`` takes it off the active count."""

    def forever() -> Iterator[bytes]:
        common.ACTIVE_STREAMS["active"] += 1
        try:
            for index in itertools.count():
                yield common.sse_frame(index, "tick")
                time.sleep(common.TICK)
        finally:
            common.ACTIVE_STREAMS["active"] -= 1

    return Response(forever(), mimetype="text/event-stream")


@app.get("/sse-active")
def sse_active() -> Response:
    return jsonify(common.ACTIVE_STREAMS)

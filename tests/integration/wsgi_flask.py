"""A Flask app for the WSGI tests: uploads, streamed responses, stream_with_context."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from flask import Flask, Response, request, stream_with_context

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "Hello from Flask"


@app.post("/upload")
def upload() -> dict[str, object]:
    """A multipart form with a file field."""
    uploaded = request.files["file"]
    data = uploaded.read()
    return {"name": uploaded.filename, "length": len(data), "crc": zlib.crc32(data)}


@app.post("/raw")
def raw() -> dict[str, object]:
    """The raw body read from ``request.stream`` in chunks."""
    length = 0
    crc = 0
    while chunk := request.stream.read(65536):
        length += len(chunk)
        crc = zlib.crc32(chunk, crc)
    return {"length": length, "crc": crc}


@app.get("/stream")
def stream() -> Response:
    count = int(request.args.get("count", "5"))

    def generate() -> Iterator[str]:
        # request is usable inside the generator only thanks to stream_with_context
        for index in range(count):
            yield f"{request.path}:{index}\n"

    return Response(stream_with_context(generate()), mimetype="text/plain")

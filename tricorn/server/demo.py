"""The built-in demo app, served when ``tricorn`` is started without an app."""

from __future__ import annotations

import html

from tricorn.server.asgi_types import Receive, Scope, Send, send_complete_response
from tricorn.server.backends import backend_name

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tricorn</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>tricorn is running</h1>
<p>This page was served over <strong>HTTP/{http_version}</strong> by tricorn on the
<strong>{backend}</strong> backend.</p>
<p>Serve your own ASGI app with <code>tricorn module:app</code>.</p>
</body></html>
"""


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer every HTTP request with a page naming the HTTP version and the backend."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    page = PAGE.format(
        http_version=html.escape(scope["http_version"]), backend=html.escape(backend_name())
    )
    await send_complete_response(send, 200, b"text/html; charset=utf-8", page.encode("utf-8"))

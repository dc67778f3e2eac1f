"""What every framework app in this folder shares: the contract the tests check.

Routes (each app implements them its own framework's way):
  GET  /json                -> {"framework": NAME, "ok": true}
  GET  /items/{id:int}?q=   -> {"item_id": id, "q": q}
  POST /upload (multipart, field "file") -> {"filename", "size", "sha256"}
  GET  /stream              -> STREAM_CHUNKS, one send each
  GET  /sse                 -> text/event-stream with SSE_EVENTS
  GET  /state               -> {"greeting": the value set at lifespan startup}
  GET  /static/hello.txt    -> the file next to this module
  GET  /sse-forever         -> an endless event stream (one "tick" per 20 ms) until the
                               client goes away; GET /sse-active -> {"active": streams open}
  GET  /browser             -> BROWSER_PAGE (the headless-Chromium test loads it)
  WS   /ws                  -> echoes text as "echo: " + text and bytes as they are;
                               "whoami" answers with the scope's http_version
Lifespan: startup puts GREETING into the state; shutdown writes "shutdown" to the file named
by $E2E_SHUTDOWN_FILE (the test reads it after the server stopped).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
GREETING = "set at startup"
STREAM_CHUNKS = [f"chunk {i}\n".encode() for i in range(5)]
SSE_EVENTS = ["first", "second", "third"]


def sse_frame(index: int, data: str) -> bytes:
    return f"id: {index}\nevent: tick\ndata: {data}\n\n".encode()


#: Endless event streams now running (the generator's finally takes itself off).
ACTIVE_STREAMS: dict[str, int] = {"active": 0}
TICK = 0.02


def upload_summary(filename: str | None, data: bytes) -> dict[str, object]:
    return {"filename": filename, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def on_shutdown() -> None:
    target = os.environ.get("E2E_SHUTDOWN_FILE")
    if target:
        Path(target).write_text("shutdown")


#: The page the headless-Chromium test loads over HTTPS: it opens a WebSocket back to the same
#: origin (so over the page's HTTP/2 connection when the server offers RFC 8441), sends a
#: greeting and "whoami", and writes the replies and the page's nextHopProtocol into #out.
BROWSER_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>tricorn e2e</title></head>
<body>
<pre id="out"></pre>
<script>
const out = document.getElementById("out");
const replies = [];
const ws = new WebSocket(`wss://${location.host}/ws`);
ws.onopen = () => { ws.send("hello from chromium"); ws.send("whoami"); };
ws.onmessage = (event) => {
  replies.push(event.data);
  if (replies.length === 2) {
    out.textContent = JSON.stringify({
      echo: replies[0],
      websocketHttpVersion: replies[1],
      nextHopProtocol: performance.getEntries()[0].nextHopProtocol,
    });
    ws.close(1000);
  }
};
ws.onerror = () => { out.textContent = JSON.stringify({error: "websocket error"}); };
</script>
</body></html>
"""

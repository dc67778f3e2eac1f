"""Async Django views for the routes in tests/e2e/apps/common.py (no lifespan: Django has
none)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

STREAM_CHUNKS = [f"chunk {i}\n".encode() for i in range(5)]
SSE_EVENTS = ["first", "second", "third"]


async def json_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"framework": "django", "ok": True})


async def item(request: HttpRequest, item_id: int) -> HttpResponse:
    return JsonResponse({"item_id": item_id, "q": request.GET.get("q")})


async def upload(request: HttpRequest) -> HttpResponse:
    """csrf_exempt in urls.py: an API endpoint for non-browser clients."""
    file: Any = request.FILES["file"]
    digest = hashlib.sha256()
    size = 0
    for chunk in file.chunks():
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse({"filename": file.name, "size": size, "sha256": digest.hexdigest()})


async def _chunks() -> AsyncIterator[bytes]:
    for chunk in STREAM_CHUNKS:
        yield chunk


async def stream(request: HttpRequest) -> HttpResponse:
    return StreamingHttpResponse(_chunks(), content_type="text/plain")


async def _events() -> AsyncIterator[bytes]:
    for index, data in enumerate(SSE_EVENTS):
        yield f"id: {index}\nevent: tick\ndata: {data}\n\n".encode()


async def sse(request: HttpRequest) -> HttpResponse:
    response = StreamingHttpResponse(_events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response


ACTIVE_STREAMS = {"active": 0}


async def _forever() -> AsyncIterator[bytes]:
    ACTIVE_STREAMS["active"] += 1
    try:
        index = 0
        while True:
            yield f"id: {index}\nevent: tick\ndata: tick\n\n".encode()
            index += 1
            await asyncio.sleep(0.02)
    finally:
        ACTIVE_STREAMS["active"] -= 1


async def sse_forever(request: HttpRequest) -> HttpResponse:
    """An endless event stream: Django stops it when the client goes away."""
    return StreamingHttpResponse(_forever(), content_type="text/event-stream")


async def sse_active(request: HttpRequest) -> HttpResponse:
    return JsonResponse(ACTIVE_STREAMS)


def browser(request: HttpRequest) -> HttpResponse:
    """The page of tests/e2e/apps/common.py, written next to this file by the test (a sync
    view: Django runs it in a thread)."""
    return HttpResponse((Path(__file__).resolve().parent / "browser.html").read_text())


async def version(request: HttpRequest) -> HttpResponse:
    """The ASGI scope's http_version, as Django's ASGIRequest keeps it."""
    scope: dict[str, Any] = getattr(request, "scope", {})
    return JsonResponse({"http_version": scope.get("http_version")})

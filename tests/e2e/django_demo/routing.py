"""WebSocket URLs of the demo app, for Channels' URLRouter."""

from __future__ import annotations

from django.urls import path

from . import consumers

websocket_urlpatterns = [path("ws", consumers.EchoConsumer.as_asgi())]

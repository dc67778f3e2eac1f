"""A Channels WebSocket consumer: echoes text as "echo: " + text and bytes as they are;
"whoami" answers with the scope's http_version."""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer


class EchoConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "whoami":
            await self.send(text_data=self.scope["http_version"])
        elif text_data is not None:
            await self.send(text_data="echo: " + text_data)
        elif bytes_data is not None:
            await self.send(bytes_data=bytes_data)

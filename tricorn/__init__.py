"""tricorn: an ASGI server for HTTP/1.1, HTTP/2 and WebSocket, on trio or asyncio.

The public API is ``Config``, ``serve`` (embed in a trio or asyncio program) and ``run``
(block until a signal, for scripts).
"""

from tricorn.config import Config
from tricorn.server.serve import run, serve

__all__ = ["Config", "run", "serve"]
__version__ = "0.1.0"

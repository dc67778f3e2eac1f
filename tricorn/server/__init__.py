"""The worker layer: sockets, tasks, time and ASGI, written once on anyio."""

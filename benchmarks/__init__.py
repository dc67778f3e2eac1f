"""Side-by-side load runs of tricorn against other ASGI servers (see README.md)."""

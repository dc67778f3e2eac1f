"""A 100 MiB download sent with ``http.response.pathsend`` against the same bytes sent as
``http.response.body`` messages (1 MiB each, from memory), over HTTP/1.1 and h2c.

    python -m benchmarks.pathsend [--repeat 5] [--backends trio,asyncio]

The server runs on core 0, curl on core 1; each figure is the median of ``--repeat``
downloads to /dev/null (curl's own ``time_total``). The app is ``benchmarks.pathsend:app``,
serving the file named by ``PATHSEND_FILE``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import tricorn_process

Message = dict[str, Any]
MIB = 1024 * 1024
SIZE = 100 * MIB
_CHUNK = b"x" * MIB


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-length", str(SIZE).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if scope["path"] == "/pathsend":
        await send({"type": "http.response.pathsend", "path": os.environ["PATHSEND_FILE"]})
        return
    for index in range(SIZE // MIB):
        more = index < SIZE // MIB - 1
        await send({"type": "http.response.body", "body": _CHUNK, "more_body": more})


def _download(url: str, flag: str) -> float:
    result = subprocess.run(
        ["taskset", "-c", "1", "curl", "-s", flag, "-o", "/dev/null", "-w", "%{time_total}", url],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backends", default="trio,asyncio")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "100mib.bin"
        path.write_bytes(_CHUNK * (SIZE // MIB))
        env = {**os.environ, "PATHSEND_FILE": str(path)}
        print("| backend | protocol | body messages, MB/s | pathsend, MB/s | pathsend / body |")
        print("| --- | --- | ---: | ---: | ---: |")
        for backend in args.backends.split(","):
            command = ["benchmarks.pathsend:app", "--backend", backend]
            with tricorn_process(command, env=env, cpu=0) as (_, port):
                for name, flag in (("HTTP/1.1", "--http1.1"), ("h2c", "--http2-prior-knowledge")):
                    rates = []
                    for target in ("/body", "/pathsend"):
                        url = f"http://127.0.0.1:{port}{target}"
                        times = [_download(url, flag) for _ in range(args.repeat)]
                        rates.append(SIZE / statistics.median(times) / 1e6)
                    print(
                        f"| {backend} | {name} | {rates[0]:,.0f} | {rates[1]:,.0f} "
                        f"| {rates[1] / rates[0]:.2f}x |"
                    )


if __name__ == "__main__":
    main()

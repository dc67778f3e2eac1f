"""A 100 MiB download sent with ``http.response.pathsend`` against the same bytes sent as
``http.response.body`` messages, over HTTP/1.1 and h2c, in one run:

- ``/body``: 1 MiB ``http.response.body`` messages from memory;
- ``/chunked``: the app opens the file and reads it in 1 MiB pieces in a worker thread, each
  sent as a body message: what tricorn's pathsend did before sendfile (and still does over
  TLS and HTTP/2);
- ``/pathsend``: one ``http.response.pathsend`` (``os.sendfile`` over cleartext HTTP/1.1).

The same three for a 64 KiB file (``/small/...``, the size of a static asset) are measured
in requests/s with wrk over HTTP/1.1.

    python -m benchmarks.pathsend [--repeat 5] [--backends trio,asyncio,uvloop]

The server runs on core 0, curl on core 1; each rate is the median of ``--repeat``
downloads to /dev/null (curl's own ``time_total``), the three kinds taking turns. The
server's CPU time (user + system, all threads, from /proc) per download is the figure that
hardly moves when other jobs load the machine. The app is ``benchmarks.pathsend:app``,
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

import anyio.to_thread

from benchmarks.harness import proc_stat, tricorn_process

Message = dict[str, Any]
MIB = 1024 * 1024
SIZE = 100 * MIB
SMALL_SIZE = 64 * 1024
_CHUNK = b"x" * MIB
_SMALL = b"x" * SMALL_SIZE


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    small = scope["path"].startswith("/small/")
    kind = scope["path"].rpartition("/")[2]
    size = SMALL_SIZE if small else SIZE
    path = os.environ["PATHSEND_SMALL_FILE" if small else "PATHSEND_FILE"]
    headers = [(b"content-length", str(size).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if kind == "pathsend":
        await send({"type": "http.response.pathsend", "path": path})
    elif kind == "chunked":
        # What tricorn's pathsend did before sendfile: open and read in a worker thread.
        file = await anyio.to_thread.run_sync(open, path, "rb")
        with file:
            left = size
            while left:
                piece = await anyio.to_thread.run_sync(file.read, MIB)
                left -= len(piece)
                await send({"type": "http.response.body", "body": piece, "more_body": left > 0})
    elif small:
        await send({"type": "http.response.body", "body": _SMALL})
    else:
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


def _wrk(url: str, duration: float) -> float:
    """Requests/s of ``wrk -t1 -c16`` on core 1."""
    command = ["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{duration:g}s", url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    for line in output.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise SystemExit(f"wrk said: {output}")


def _cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time, all threads (``/proc/PID/stat``)."""
    fields = proc_stat(pid)
    if fields is None:
        raise SystemExit("the server has gone")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backends", default="trio,asyncio,uvloop")
    parser.add_argument("--small-duration", type=float, default=3.0, help="seconds per wrk run")
    args = parser.parse_args()
    targets = ("body", "chunked", "pathsend")
    large: list[str] = []
    small: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "100mib.bin"
        path.write_bytes(_CHUNK * (SIZE // MIB))
        small_path = Path(folder) / "64kib.bin"
        small_path.write_bytes(_SMALL)
        env = {**os.environ, "PATHSEND_FILE": str(path), "PATHSEND_SMALL_FILE": str(small_path)}
        for backend in args.backends.split(","):
            command = ["benchmarks.pathsend:app", "--backend", backend]
            with tricorn_process(command, env=env, cpu=0, quiet=True) as (server, port):
                base = f"http://127.0.0.1:{port}"
                for name, flag in (("HTTP/1.1", "--http1.1"), ("h2c", "--http2-prior-knowledge")):
                    times: dict[str, list[float]] = {target: [] for target in targets}
                    cpu: dict[str, float] = dict.fromkeys(targets, 0.0)
                    for _ in range(args.repeat):  # in turns, so a noisy moment hits all three
                        for target in targets:
                            before = _cpu_seconds(server.pid)
                            times[target].append(_download(f"{base}/{target}", flag))
                            cpu[target] += _cpu_seconds(server.pid) - before
                    memory, thread, pathsend = (
                        SIZE / statistics.median(times[target]) / 1e6 for target in targets
                    )
                    cpu_ms = " / ".join(f"{cpu[t] / args.repeat * 1000:.0f}" for t in targets)
                    large.append(
                        f"| {backend} | {name} | {memory:,.0f} / {thread:,.0f} / {pathsend:,.0f} "
                        f"| {pathsend / memory:.2f}x | {pathsend / thread:.2f}x | {cpu_ms} |"
                    )
                rates: dict[str, list[float]] = {target: [] for target in targets}
                per_request: dict[str, list[float]] = {target: [] for target in targets}
                for _ in range(args.repeat):
                    for target in targets:
                        before = _cpu_seconds(server.pid)
                        rate = _wrk(f"{base}/small/{target}", args.small_duration)
                        spent = _cpu_seconds(server.pid) - before
                        rates[target].append(rate)
                        per_request[target].append(spent / (rate * args.small_duration) * 1e6)
                memory, thread, pathsend = (statistics.median(rates[t]) for t in targets)
                cpu_us = " / ".join(f"{statistics.median(per_request[t]):.0f}" for t in targets)
                small.append(
                    f"| {backend} | {memory:,.0f} / {thread:,.0f} / {pathsend:,.0f} "
                    f"| {pathsend / memory:.2f}x | {pathsend / thread:.2f}x | {cpu_us} |"
                )
    print("100 MiB, curl, median of --repeat downloads:\n")
    print(
        "| backend | protocol | MB/s: memory / thread / pathsend | pathsend / memory "
        "| pathsend / thread | server CPU ms per download: memory / thread / pathsend |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    print("\n".join(large))
    print(f"\n64 KiB over HTTP/1.1, wrk -t1 -c16 -d{args.small_duration:g}s, median:\n")
    print(
        "| backend | requests/s: memory / thread / pathsend | pathsend / memory "
        "| pathsend / thread | server CPU us per request: memory / thread / pathsend |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    print("\n".join(small))


if __name__ == "__main__":
    main()

"""Where the memory of idle HTTP/1.1 keep-alive connections goes: tracemalloc and RSS.

    python benchmarks/idle_profile.py --backend trio --count 2000
    python benchmarks/idle_profile.py --backend asyncio --count 2000 --parser h11

It serves ``benchmarks.apps:app`` in this process (with tracemalloc on), opens ``--count``
keep-alive connections from a child process (each answered one ``GET /``, like the
benchmark's idle scenario), then prints the bytes per connection the Python heap grew by,
grouped by the line that allocated them (``--frames`` deep), and the RSS growth. The
connections are held while the snapshot is taken, then closed. Loopback only.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import cast

import anyio

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.apps import app
from tricorn import Config, serve
from tricorn.server.asgi_types import ASGI3App

#: The child: open N connections, one GET / each, report "ready", hold them until stdin closes.
CLIENT = r"""
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
conns = []
request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
for start in range(0, count, 100):
    batch = [socket.create_connection(("127.0.0.1", port)) for _ in range(min(100, count - start))]
    for sock in batch:
        sock.sendall(request)
    for sock in batch:
        data = b""
        while b"Hello, world!" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                raise SystemExit("closed by the server")
            data += chunk
    conns.extend(batch)
print("ready", flush=True)
sys.stdin.read()
"""


def _where(frame: tracemalloc.Frame) -> str:
    name = frame.filename
    for marker in ("/site-packages/", "/lib/python3.11/", "/wt/mem/"):
        if marker in name:
            name = name.split(marker, 1)[1]
    return f"{name}:{frame.lineno}"


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def main(args: argparse.Namespace) -> None:
    config = Config(
        bind=["127.0.0.1:0"],
        access_log=False,
        keep_alive_timeout=600,
        http1_parser=args.parser,
        log_level="warning",
    )
    shutdown = anyio.Event()
    async with anyio.create_task_group() as group:
        addresses = await group.start(_serve, config, shutdown)
        address = addresses[0].address
        assert isinstance(address, tuple)
        port = address[1]

        async def run_client(count: int) -> subprocess.Popen[str]:
            child = subprocess.Popen(  # noqa: ASYNC220 - a profiling tool: a short start
                [sys.executable, "-c", CLIENT, str(port), str(count)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdout is not None
            line = await anyio.to_thread.run_sync(child.stdout.readline)
            if line.strip() != "ready":
                raise SystemExit(f"client failed: {line!r}")
            await anyio.sleep(0.5)
            return child

        # Warm up: a first batch of connections, closed, so one-off allocations are done.
        warm = await run_client(200)
        assert warm.stdin is not None
        warm.stdin.close()
        warm.wait()
        await anyio.sleep(0.5)
        gc.collect()
        before = tracemalloc.take_snapshot()
        rss0 = rss_kib()
        child = await run_client(args.count)
        gc.collect()
        after = tracemalloc.take_snapshot()
        rss1 = rss_kib()
        n = args.count
        filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
        stats = after.filter_traces(filters).compare_to(
            before.filter_traces(filters), "traceback" if args.frames > 1 else "lineno"
        )
        total = sum(stat.size_diff for stat in stats)
        print(
            f"backend={args.backend} parser={args.parser} connections={n}: "
            f"Python heap +{total / n:.0f} B/conn, RSS +{(rss1 - rss0) * 1024 / n:.0f} B/conn"
        )
        # Regroup by (the innermost tricorn line, the innermost line): who asked, what grew.
        groups: dict[tuple[str, str], list[int]] = {}
        for stat in stats:
            ours = [f for f in stat.traceback if "/tricorn/" in f.filename]
            inner = stat.traceback[-1]
            key = (_where(ours[-1]) if ours else "-", _where(inner))
            entry = groups.setdefault(key, [0, 0])
            entry[0] += stat.size_diff
            entry[1] += stat.count_diff
        by_caller: dict[str, int] = {}
        for (ours_line, _), (size, _) in groups.items():
            by_caller[ours_line] = by_caller.get(ours_line, 0) + size
        print("by the innermost tricorn line:")
        for caller, size in sorted(by_caller.items(), key=lambda item: -item[1])[:15]:
            print(f"{size / n:8.0f} B  {caller}")
        print("by the allocating line:")
        ranked = sorted(groups.items(), key=lambda item: -item[1][0])
        for (ours_line, inner_line), (size, count) in ranked[: args.top]:
            if abs(size) < n // 2:
                continue
            print(f"{size / n:8.0f} B {count / n:5.1f} blocks  {inner_line:55} <- {ours_line}")
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
        shutdown.set()


async def _serve(
    config: Config, shutdown: anyio.Event, *, task_status: anyio.abc.TaskStatus[object]
) -> None:
    await serve(
        cast(ASGI3App, app), config, shutdown_trigger=shutdown.wait, task_status=task_status
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="trio", choices=["trio", "asyncio", "uvloop"])
    parser.add_argument("--parser", default="tricorn", choices=["tricorn", "h11"])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=1)
    parser.add_argument("--top", type=int, default=40)
    arguments = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tracemalloc.start(max(arguments.frames, 1))
    backend = "asyncio" if arguments.backend == "uvloop" else arguments.backend
    options = {"use_uvloop": True} if arguments.backend == "uvloop" else {}
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    anyio.run(main, arguments, backend=backend, backend_options=options)

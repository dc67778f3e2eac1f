"""Failed requests and requests/s under load while workers are restarted.

    .venv/bin/python benchmarks/restart_load.py [--duration 10] [--workers 1,2]
        [--connections 32] [--events steady,sighup,sigkill] [--rolls 1] [--backend auto]
        [--tool wrk|h2load]

For each worker count, one run of ``--duration`` seconds per event on 127.0.0.1 against
``tricorn --workers N benchmarks.apps:app`` (``/``, a small plain-text response), with wrk
(HTTP/1.1 keep-alive) or h2load (HTTP/2 prior knowledge, one stream per connection):

- ``steady``: nothing happens;
- ``sighup``: ``--rolls`` SIGHUPs to the supervisor, evenly spread over the run (each a
  rolling restart of every worker: replacement ready before the old one stops);
- ``sigkill``: ``--rolls`` SIGKILLs, each to one worker (connections on that worker
  are lost; the supervisor starts another).

``workers = 1`` is the single process (no supervisor), so it has no SIGHUP/SIGKILL row.
Failed requests are wrk's socket errors (connect, read, write, timeout: a response slower
than 10 s) plus non-2xx/3xx, or h2load's failed requests.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import free_port, parse_wrk, tricorn_process, wait_listening

__all__ = ["free_port", "wait_listening"]  # moved to benchmarks.harness, still importable

ROOT = Path(__file__).resolve().parents[1]


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(item) for item in text.split()]


def run_wrk(port: int, duration: float, connections: int) -> tuple[float, int, int, str]:
    """requests/s, requests, failed requests, wrk's error line."""
    result = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{duration:g}s",
            # A response slower than this counts as a "timeout" error (wrk's default, 2 s, is
            # passed on this shared machine when wrk itself is not scheduled for that long).
            "--timeout",
            "10s",
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 30,
    )
    out = result.stdout
    report = parse_wrk(out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if report is None or rate is None:
        raise RuntimeError(f"wrk failed: {out} {result.stderr}")
    return float(rate.group(1)), report.requests, report.failed, report.socket_errors_line


def run_h2load(port: int, duration: float, connections: int) -> tuple[float, int, int, str]:
    """HTTP/2 (prior knowledge), one stream at a time per connection: requests/s, requests,
    failed requests (h2load's failed: errored, reset or refused streams), its detail."""
    result = subprocess.run(
        [
            "h2load",
            *("-c", str(connections), "-m", "1", "-D", f"{duration:g}"),
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 30,
    )
    out = result.stdout
    rate = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]
    counts = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        out,
    )
    assert counts is not None, out
    total, failed, errored = int(counts.group(1)), int(counts.group(5)), int(counts.group(6))
    return rate, total, failed, f"errored {errored}" if failed else ""


def measure(
    workers: int,
    event: str,
    duration: float,
    connections: int,
    rolls: int,
    backend: str,
    tool: str = "wrk",
) -> str:
    command = ["--workers", str(workers), "--backend", backend, "benchmarks.apps:app"]
    with tricorn_process(command, root=ROOT) as (process, port):
        if workers > 1:
            deadline = time.monotonic() + 30
            while len(children(process.pid)) < workers and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1)  # let every worker finish its start before the load begins

        def disturb() -> None:
            if event == "steady":
                return
            for _ in range(rolls):
                time.sleep(duration / (rolls + 1))
                if event == "sighup":
                    os.kill(process.pid, signal.SIGHUP)
                elif event == "sigkill":
                    os.kill(children(process.pid)[0], signal.SIGKILL)

        thread = threading.Thread(target=disturb)
        thread.start()
        run = run_h2load if tool == "h2load" else run_wrk
        rate, total, failed, detail = run(port, duration, connections)
        thread.join()
    times = "" if event == "steady" else f" x{rolls}"
    return f"| {tool} | {workers} | {event}{times} | {total} | {failed} {detail} | {rate:,.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--events", default="steady,sighup,sigkill")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--tool", default="wrk", choices=["wrk", "h2load"])
    parser.add_argument(
        "--rolls", type=int, default=1, help="SIGHUPs (or SIGKILLs) spread over one run"
    )
    args = parser.parse_args()
    events = args.events.split(",")
    print("| tool | workers | event | requests | failed | requests/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for workers in (int(item) for item in args.workers.split(",")):
        for event in events if workers > 1 else ["steady"]:
            row = measure(
                workers,
                event,
                args.duration,
                args.connections,
                args.rolls,
                args.backend,
                args.tool,
            )
            print(row, flush=True)


if __name__ == "__main__":
    main()

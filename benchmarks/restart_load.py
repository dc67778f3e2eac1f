"""Failed requests and requests/s under load while workers are restarted.

    .venv/bin/python benchmarks/restart_load.py [--duration 10] [--workers 1,2] [--connections 32]

For each worker count, three wrk runs of ``--duration`` seconds on 127.0.0.1 against
``tricorn --workers N benchmarks.apps:app`` (``/``, a small plain-text response):

- ``steady``: nothing happens;
- ``sighup``: SIGHUP to the supervisor a third of the way in (a rolling restart of every
  worker: replacement ready before the old one stops);
- ``sigkill``: SIGKILL to one worker a third of the way in (connections on that worker
  are lost; the supervisor starts another).

``workers = 1`` is the single process (no supervisor), so it has no SIGHUP/SIGKILL row.
Failed requests are wrk's socket errors (connect, read, write, timeout) plus non-2xx/3xx.
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


def measure(workers: int, event: str, duration: float, connections: int) -> str:
    command = ["--workers", str(workers), "benchmarks.apps:app"]
    with tricorn_process(command, root=ROOT) as (process, port):
        if workers > 1:
            deadline = time.monotonic() + 30
            while len(children(process.pid)) < workers and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1)  # let every worker finish its start before the load begins

        def disturb() -> None:
            time.sleep(duration / 3)
            if event == "sighup":
                os.kill(process.pid, signal.SIGHUP)
            elif event == "sigkill":
                os.kill(children(process.pid)[0], signal.SIGKILL)

        thread = threading.Thread(target=disturb)
        thread.start()
        rate, total, failed, detail = run_wrk(port, duration, connections)
        thread.join()
    return f"| {workers} | {event} | {total} | {failed} {detail} | {rate:,.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    print("| workers | event | requests | failed | requests/s |")
    print("| --- | --- | --- | --- | --- |")
    for workers in (int(item) for item in args.workers.split(",")):
        for event in ("steady", "sighup", "sigkill") if workers > 1 else ("steady",):
            print(measure(workers, event, args.duration, args.connections), flush=True)


if __name__ == "__main__":
    main()

"""Hello-world speed of two (or more) tricorn checkouts in one run, taking turns.

    .venv/bin/python benchmarks/compare.py --roots before=/tmp/old,after=. \\
        [--rounds 3] [--duration 5] [--backends trio,asyncio] \\
        [--http1-parsers tricorn,httptools] [--scenarios h1,h2c,h1close,ws64,ws64k] \\
        [--peers uvicorn-httptools-uvloop,uvicorn-h11-asyncio]

For a refactoring that should cost nothing: each round runs every root once per backend and
scenario, in turn, so that the machine's drift hits them alike. The scenarios: the
hello-world rows of ``run.py``, HTTP/1.1 keep-alive (``h1``: wrk, 64 connections), h2c
(``h2c``: h2load, 16 connections x 32 streams) and ``h1close`` (wrk with ``Connection:
close``: one request per connection); and, on request, WebSocket echo (``ws64``, ``ws64k``:
``benchmarks/ws_client.py``, 16 connections, 64 B or 64 KiB binary messages; a "request" is
one message echoed). The server runs from the root's own checkout
(``python -m tricorn`` with that folder first on the path) pinned to core 0, the load tool
to core 1 (when there are two cores).

Two figures per cell, medians over the rounds: requests/s, and the server's CPU time per
request (user + system from /proc, all threads), which a busy machine disturbs much less
than requests/s. The last columns are the ratios to the first root. With more than one
``--http1-parsers``, each root runs once per parser (``label/parser``), the first the base.
``--backends`` takes ``uvloop`` too (tricorn's ``--backend uvloop``). ``--peers`` adds
servers of ``servers.py`` (Uvicorn, Hypercorn: from the Python that runs this script, i.e.
``benchmarks/.venv-peers``) measured the same way in the same rounds, on the scenarios they
serve; their rows appear under the backend ``peer``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import parse_wrk, proc_stat, tricorn_process
from benchmarks.servers import H1, H2C, SERVERS, RunningServer

TWO_CORES = (os.cpu_count() or 1) >= 2
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    rate: float  # requests/s
    cpu_us: float  # server CPU microseconds per request


def _cpu_seconds(pid: int) -> float:
    fields = proc_stat(pid)
    if fields is None:
        raise RuntimeError(f"the server {pid} has gone")
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)


#: The WebSocket scenarios: message size in bytes.
WS_SIZES = {"ws64": 64, "ws64k": 65536}


def _ws_load(port: int, size: int, duration: float) -> tuple[float, int]:
    """Run the WebSocket echo client: (messages/s, messages). No warm-up inside the measured
    run (``measure`` warms the server up first), so the server's CPU is spent on counted
    messages (and 16 handshakes)."""
    pin = ["taskset", "-c", "1"] if TWO_CORES else []
    client = Path(__file__).resolve().parent / "ws_client.py"
    argv = [*pin, sys.executable, str(client), "--port", str(port), "--size", str(size)]
    argv += ["--connections", "16", "--duration", f"{duration:g}", "--warmup", "0"]
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration + 30, check=False
    ).stdout
    lines = [line for line in out.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    if not result.get("messages") or result.get("errors") or "error" in result:
        raise RuntimeError(f"ws_client failed: {out}")
    print(f"  ws_client CPU {result['client_cpu_percent']} %", file=sys.stderr)
    return float(result["rate"]), int(result["messages"])


def _load(port: int, scenario: str, duration: float) -> tuple[float, int]:
    """Run the load tool: (requests/s, requests)."""
    if scenario in WS_SIZES:
        return _ws_load(port, WS_SIZES[scenario], duration)
    url = f"http://127.0.0.1:{port}/"
    pin = ["taskset", "-c", "1"] if TWO_CORES else []
    if scenario in ("h1", "h1close"):
        close = ["-H", "Connection: close"] if scenario == "h1close" else []
        # A long timeout: on a loaded machine a 2 s one (wrk's) fails whole runs.
        argv = [*pin, "wrk", "-t1", "-c64", f"-d{duration:g}s", "--timeout", "10s", *close, url]
    else:
        argv = [*pin, "h2load", "-t1", "-c16", "-m32", "-D", f"{duration:g}", url]
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration + 30, check=False
    ).stdout
    if scenario in ("h1", "h1close"):
        report = parse_wrk(out)
        if report is None or (report.failed and scenario == "h1"):
            raise RuntimeError(f"wrk failed: {out}")
        return report.requests / report.seconds, report.requests
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(r"(\d+) succeeded, (\d+) failed", out)
    if rate is None or done is None or int(done.group(2)):
        raise RuntimeError(f"h2load failed: {out}")
    return float(rate.group(1)), int(done.group(1))


def measure(
    root: Path, backend: str, scenario: str, duration: float, http1_parser: str = "tricorn"
) -> Sample:
    args = ["--backend", backend, "--http1-parser", http1_parser, "benchmarks.apps:app"]
    env = {**os.environ, "PYTHONPATH": str(root)}
    with tricorn_process(args, root=root, env=env, cpu=0 if TWO_CORES else None, quiet=True) as (
        process,
        port,
    ):
        _load(port, scenario, 1.0)  # warm up
        before = _cpu_seconds(process.pid)
        rate, requests = _load(port, scenario, duration)
        used = _cpu_seconds(process.pid) - before
    return Sample(rate, used / requests * 1e6)


def measure_peer(name: str, scenario: str, duration: float) -> Sample | None:
    """A peer server of ``servers.py``, measured as ``measure`` does; None when it does not
    serve ``scenario``."""
    spec = SERVERS[name]
    if (H2C if scenario == "h2c" else H1) not in spec.features:
        return None
    bindir = Path(sys.executable).parent
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"compare-{name}.log"
    server = RunningServer(spec, bindir, log, cpu=0 if TWO_CORES else None)
    try:
        problem = server.wait_ready()
        if problem is not None:
            raise RuntimeError(f"{name}: {problem}")
        pids = server.pids()
        _load(server.port, scenario, 1.0)  # warm up
        before = sum(_cpu_seconds(pid) for pid in pids)
        rate, requests = _load(server.port, scenario, duration)
        used = sum(_cpu_seconds(pid) for pid in pids) - before
    finally:
        server.stop()
    return Sample(rate, used / requests * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--roots", required=True, help="label=path,label=path (first: base)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--backends", default="trio,asyncio")
    parser.add_argument("--http1-parsers", default="tricorn", help="e.g. tricorn,httptools")
    parser.add_argument("--scenarios", default="h1,h2c", help="from h1, h2c, h1close, ws64, ws64k")
    parser.add_argument("--peers", default="", help="servers.py rows, e.g. uvicorn-h11-asyncio")
    args = parser.parse_args()
    peers = [name for name in args.peers.split(",") if name]
    parsers = args.http1_parsers.split(",")
    roots = [
        (
            label if len(parsers) == 1 else f"{label}/{http1_parser}",
            Path(path).resolve(),
            http1_parser,
        )
        for label, path in (item.split("=", 1) for item in args.roots.split(","))
        for http1_parser in parsers
    ]
    cells = [
        (backend, scenario)
        for backend in args.backends.split(",")
        for scenario in args.scenarios.split(",")
    ]
    samples: dict[tuple[str, str, str], list[Sample]] = {}
    for round_number in range(args.rounds):
        for backend, scenario in cells:
            order = roots if round_number % 2 == 0 else roots[::-1]
            for label, root, http1_parser in order:
                sample = measure(root, backend, scenario, args.duration, http1_parser)
                samples.setdefault((label, backend, scenario), []).append(sample)
                print(
                    f"round {round_number + 1} {label} {backend} {scenario}: "
                    f"{sample.rate:,.0f} req/s, {sample.cpu_us:.1f} us CPU/request",
                    file=sys.stderr,
                    flush=True,
                )
        for scenario in dict.fromkeys(scenario for _, scenario in cells):
            for name in peers:
                peer_sample = measure_peer(name, scenario, args.duration)
                if peer_sample is None:
                    continue
                samples.setdefault((name, "peer", scenario), []).append(peer_sample)
                print(
                    f"round {round_number + 1} {name} {scenario}: {peer_sample.rate:,.0f} "
                    f"req/s, {peer_sample.cpu_us:.1f} us CPU/request",
                    file=sys.stderr,
                    flush=True,
                )
    base = roots[0][0]
    print("| backend | scenario | root | requests/s | CPU us/request | req/s ratio | CPU ratio |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for backend, scenario in cells:
        base_rate = statistics.median(s.rate for s in samples[(base, backend, scenario)])
        base_cpu = statistics.median(s.cpu_us for s in samples[(base, backend, scenario)])
        for label, _, _ in roots:
            rate = statistics.median(s.rate for s in samples[(label, backend, scenario)])
            cpu = statistics.median(s.cpu_us for s in samples[(label, backend, scenario)])
            print(
                f"| {backend} | {scenario} | {label} | {rate:,.0f} | {cpu:.1f} | "
                f"{rate / base_rate:.2f} | {cpu / base_cpu:.2f} |"
            )
    # Peers: their ratios are to the base root on the first backend of the same scenario.
    for scenario in dict.fromkeys(scenario for _, scenario in cells):
        key = (base, cells[0][0] if cells else "", scenario)
        if key not in samples:
            continue
        base_rate = statistics.median(s.rate for s in samples[key])
        base_cpu = statistics.median(s.cpu_us for s in samples[key])
        for name in peers:
            if (name, "peer", scenario) not in samples:
                continue
            rate = statistics.median(s.rate for s in samples[(name, "peer", scenario)])
            cpu = statistics.median(s.cpu_us for s in samples[(name, "peer", scenario)])
            print(
                f"| peer | {scenario} | {name} | {rate:,.0f} | {cpu:.1f} | "
                f"{rate / base_rate:.2f} | {cpu / base_cpu:.2f} |"
            )


if __name__ == "__main__":
    main()

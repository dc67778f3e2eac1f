"""Requests/s with one and with two worker processes, tricorn and Uvicorn in the same run.

    benchmarks/.venv-peers/bin/python benchmarks/workers.py [--rounds 3] [--duration 5] \\
        [--servers tricorn-asyncio,tricorn-trio,uvicorn-h11-asyncio,uvicorn-httptools-uvloop] \\
        [--workers 1,2] [--output /tmp/workers.md]
    python benchmarks/workers.py --smoke      # tricorn-asyncio only, 1 s, 1 round (CI)

HTTP/1.1 keep-alive hello world (``wrk -t1 -c64``), each server started with ``--workers N``
(tricorn and Uvicorn take the same flag). Every round runs every (server, workers) pair once,
every other round in reverse order, so that the machine's drift hits them alike; the cells
are medians over the rounds.

Placement: nothing is pinned. A pool of workers cannot be held to one core without
defeating it, and on a 2-core machine pinning wrk to one core would leave the second worker
sharing that core with wrk anyway; so the scheduler places wrk and the workers, and the
table shows how the cores were shared: the server's CPU (all its processes, from /proc) and
wrk's (its rusage), in % of one core, and how the CPU split between the two workers. What
this allows one to conclude on 2 cores: one worker gets about a core and wrk the other, so
``workers = 1`` is the single-process maximum; two workers and wrk then compete for the
same two cores, so ``workers = 2`` can gain at most the part of a core that wrk leaves, and
a ratio near 1 says nothing about more cores. The worker split says whether the kernel
spread the connections over both workers. Run it on a machine with more cores (and wrk on
cores of its own) to measure scaling.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import parse_wrk, proc_stat
from benchmarks.servers import SERVERS, RunningServer, ServerSpec

TICK = os.sysconf("SC_CLK_TCK")
DEFAULT_SERVERS = "tricorn-asyncio,tricorn-trio,uvicorn-h11-asyncio,uvicorn-httptools-uvloop"
#: The families whose command line takes ``--workers N``.
WITH_WORKERS = ("tricorn", "uvicorn")


@dataclass(frozen=True)
class Sample:
    rate: float  # requests/s
    server_cpu: float  # % of one core, all the server's processes
    wrk_cpu: float  # % of one core
    split: tuple[float, ...]  # each worker's share of the workers' CPU, largest first


def with_workers(spec: ServerSpec, workers: int) -> ServerSpec:
    """``spec`` started with ``--workers N``."""

    def build(bindir: Path, port: int, tls: object) -> list[str]:
        return [*spec.build(bindir, port, None), "--workers", str(workers)]

    return dataclasses.replace(spec, name=f"{spec.name} x{workers}", build=build)


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    found = {}
    for pid in pids:
        fields = proc_stat(pid)
        if fields is not None:
            found[pid] = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    return found


def _wait_for_processes(server: RunningServer, count: int, timeout: float = 30.0) -> None:
    """Until the server's group has ``count`` processes (the supervisor and its workers)."""
    deadline = time.monotonic() + timeout
    while len(server.pids()) < count:
        if time.monotonic() > deadline or not server.alive():
            raise RuntimeError(f"{server.spec.name}: {len(server.pids())} of {count} processes")
        time.sleep(0.1)


def _wrk(port: int, duration: float) -> tuple[float, float]:
    """(requests/s, wrk's CPU in % of one core) of one wrk run."""
    argv = ["wrk", "-t1", "-c64", f"-d{duration:g}s", "--timeout", "10s"]
    argv.append(f"http://127.0.0.1:{port}/")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration + 30, check=False
    ).stdout
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = parse_wrk(out)
    if report is None or report.failed or not report.requests:
        raise RuntimeError(f"wrk failed: {out}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return report.requests / report.seconds, 100 * cpu / wall


def measure(spec: ServerSpec, workers: int, duration: float, workdir: Path) -> Sample:
    bindir = Path(sys.executable).parent
    started = with_workers(spec, workers)
    log = workdir / f"{spec.name}-{workers}.log"
    server = RunningServer(started, bindir, log)
    try:
        problem = server.wait_ready()
        if problem:
            raise RuntimeError(f"{started.name}: {problem}")
        _wait_for_processes(server, 1 if workers == 1 else workers + 1)
        _wrk(server.port, 2)  # warm-up: every worker up and past its cold start
        pids = server.pids()
        cpu0 = _cpu_seconds(pids)
        t0 = time.monotonic()
        rate, wrk_cpu = _wrk(server.port, duration)
        wall = time.monotonic() - t0
        cpu1 = _cpu_seconds(pids)
    finally:
        server.stop()
    spent = {pid: cpu1.get(pid, cpu0[pid]) - cpu0[pid] for pid in cpu0}
    total = sum(spent.values())
    worker_cpu = sorted(
        (seconds for pid, seconds in spent.items() if workers == 1 or pid != server.pgid),
        reverse=True,
    )[:workers]
    shared = sum(worker_cpu) or 1.0
    split = tuple(round(100 * seconds / shared) for seconds in worker_cpu)
    return Sample(rate, 100 * total / wall, wrk_cpu, split)


def table(
    results: dict[tuple[str, int], list[Sample]], servers: list[str], counts: list[int]
) -> str:
    lines = [
        "| server | workers | req/s (median) | runs | server CPU % | wrk CPU % "
        f"| worker split % (last round) | x{counts[-1]} / x{counts[0]} |",
        "| --- | ---: | ---: | --- | ---: | ---: | --- | ---: |",
    ]
    for name in servers:
        base = None
        for count in counts:
            samples = results.get((name, count), [])
            if not samples:
                lines.append(f"| {name} | {count} | failed | | | | | |")
                continue
            rate = statistics.median(s.rate for s in samples)
            base = rate if base is None else base
            runs = ", ".join(f"{s.rate:,.0f}" for s in samples)
            server_cpu = statistics.median(s.server_cpu for s in samples)
            wrk_cpu = statistics.median(s.wrk_cpu for s in samples)
            split = "/".join(str(round(v)) for v in samples[-1].split)
            ratio = f"{rate / base:.2f}x" if count != counts[0] else ""
            lines.append(
                f"| {name} | {count} | {rate:,.0f} | {runs} | {server_cpu:.0f} | {wrk_cpu:.0f} "
                f"| {split} | {ratio} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=DEFAULT_SERVERS)
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--output", type=Path, help="markdown file for the table")
    parser.add_argument("--smoke", action="store_true", help="tricorn-asyncio, 1 s, 1 round")
    args = parser.parse_args(argv)
    if args.smoke:
        args.servers, args.rounds, args.duration = "tricorn-asyncio", 1, 1.0
        if args.output is None:
            args.output = Path(tempfile.gettempdir()) / "tricorn-workers-smoke.md"
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    counts = sorted({int(n) for n in args.workers.split(",")})
    for name in servers:
        if name not in SERVERS or SERVERS[name].family not in WITH_WORKERS:
            parser.error(f"{name!r}: not one of the servers with --workers ({DEFAULT_SERVERS})")
    if shutil.which("wrk") is None:
        print("wrk is not installed", file=sys.stderr)
        return 2
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"load average before: {load}", file=sys.stderr)
    workdir = Path(tempfile.mkdtemp(prefix="tricorn-workers-"))
    pairs = [(name, count) for name in servers for count in counts]
    results: dict[tuple[str, int], list[Sample]] = {}
    for round_number in range(args.rounds):
        order = pairs if round_number % 2 == 0 else pairs[::-1]
        for name, count in order:
            try:
                sample = measure(SERVERS[name], count, args.duration, workdir)
            except RuntimeError as error:
                print(f"round {round_number + 1}: {name} x{count}: {error}", file=sys.stderr)
                continue
            results.setdefault((name, count), []).append(sample)
            print(
                f"round {round_number + 1}: {name} x{count}: {sample.rate:,.0f} req/s, server "
                f"CPU {sample.server_cpu:.0f} %, wrk CPU {sample.wrk_cpu:.0f} %, split "
                f"{sample.split}",
                file=sys.stderr,
            )
    after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    text = (
        f"HTTP/1.1 keep-alive hello, wrk -t1 -c64, {args.duration:g} s x {args.rounds} rounds, "
        f"{os.cpu_count()} cores, nothing pinned; load average {load} before, {after} after.\n\n"
        + table(results, servers, counts)
        + "\n"
    )
    print(text)
    if args.output is not None:
        args.output.write_text(text)
    return 0 if all(results.get(pair) for pair in pairs) else 1


if __name__ == "__main__":
    sys.exit(main())

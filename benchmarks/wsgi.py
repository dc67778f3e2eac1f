"""WSGI hello world: tricorn against Hypercorn's WSGI, Granian's WSGI and gunicorn gthread.

    benchmarks/.venv-peers/bin/python -m benchmarks.wsgi            # writes a RESULTS.md section
    benchmarks/.venv-peers/bin/python -m benchmarks.wsgi --duration 3 --repeat 1

(``bash benchmarks/run.sh`` makes that venv; it installs gunicorn too.) Every server runs
``benchmarks.wsgi_app:app`` in one process pinned to core 0, with the same thread count
where it has one; wrk (one thread, 64 keep-alive connections) runs on core 1. Each cell is
the best of ``--repeat`` runs. The section "## WSGI hello world" of RESULTS.md is replaced
(or appended), with the date and the revision. The servers take turns: each round runs each
server once (a fresh process each time).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import git_revision, package_version, proc_stat
from benchmarks.scenarios import Context, _wrk
from benchmarks.servers import H1, KEEP_ALIVE, RunningServer, ServerSpec, TLSFiles, _hypercorn
from benchmarks.servers import _tricorn as servers_tricorn

HERE = Path(__file__).resolve().parent
APP = "benchmarks.wsgi_app:app"
SECTION = "## WSGI hello world"

Build = Callable[[Path, int, TLSFiles | None], list[str]]


def _tricorn(backend: str, threads: int) -> Build:
    return servers_tricorn(backend, APP, ("--wsgi-max-threads", str(threads)))


def _granian(threads: int) -> Build:
    def build(bindir: Path, port: int, tls: TLSFiles | None) -> list[str]:
        return [
            str(bindir / "granian"),
            "--interface",
            "wsgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--blocking-threads",
            str(threads),
            "--log-level",
            "warning",
            "--no-access-log",
            APP,
        ]

    return build


def _gunicorn(threads: int) -> Build:
    def build(bindir: Path, port: int, tls: TLSFiles | None) -> list[str]:
        return [
            str(bindir / "gunicorn"),
            "-k",
            "gthread",
            "-w",
            "1",
            "--threads",
            str(threads),
            "--bind",
            f"127.0.0.1:{port}",
            "--keep-alive",
            str(KEEP_ALIVE),
            "--log-level",
            "warning",
            APP,
        ]

    return build


def servers(threads: int) -> list[ServerSpec]:
    h1 = frozenset({H1})
    return [
        ServerSpec("tricorn-trio", "tricorn", "trio", h1, _tricorn("trio", threads)),
        ServerSpec("tricorn-asyncio", "tricorn", "asyncio", h1, _tricorn("asyncio", threads)),
        ServerSpec("tricorn-uvloop", "tricorn", "uvloop", h1, _tricorn("uvloop", threads)),
        ServerSpec("hypercorn-asyncio", "hypercorn", "asyncio", h1, _hypercorn("asyncio", APP)),
        ServerSpec("hypercorn-trio", "hypercorn", "trio", h1, _hypercorn("trio", APP)),
        ServerSpec("gunicorn-gthread", "gunicorn", "threads", h1, _gunicorn(threads)),
        ServerSpec("gunicorn-gthread-4", "gunicorn", "threads", h1, _gunicorn(4)),
        ServerSpec("granian-wsgi", "granian", "rust", h1, _granian(threads)),
    ]


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(server: RunningServer) -> float:
    """CPU time (user + system) used so far by the server's processes, all threads."""
    total = 0
    for pid in server.pids():
        fields = proc_stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / TICKS


def run(args: argparse.Namespace) -> dict[str, float | str]:
    two_cores = (os.cpu_count() or 1) >= 2
    workdir = Path(tempfile.mkdtemp(prefix="tricorn-wsgi-bench-"))
    ctx = Context(
        duration=args.duration,
        load_cpu=1 if two_cores else None,
        workdir=workdir,
        latency_rate=0.0,
        idle_counts=(),
        log=print,
    )
    bindir = Path(sys.executable).parent
    results: dict[str, float | str] = {}
    cpu: dict[str, float] = {}
    chosen = [spec for spec in servers(args.threads) if spec.name in args.servers]
    # Round-robin: each round runs every server once, so a burst of load from elsewhere on
    # the machine falls on one run of each rather than on every run of one server.
    for repeat in range(args.repeat):
        for spec in chosen:
            if isinstance(results.get(spec.name), str):
                continue  # it failed to start before
            core = 0 if two_cores else None
            server = RunningServer(spec, bindir, workdir / f"{spec.name}.log", cpu=core)
            try:
                problem = server.wait_ready()
                if problem is not None:
                    print(f"{spec.name}: failed to start: {problem}")
                    results[spec.name] = "failed to start"
                    parts = [part.strip(" |+-") for part in problem.split("|")]
                    last = next((part for part in reversed(parts) if part), problem)
                    results[f"_note {spec.name}"] = f"{spec.name} failed to start: `{last[:120]}`"
                    continue
                cpu_before = cpu_seconds(server)
                outcome = _wrk(ctx, server, [], "wsgi_h1_keepalive")
                cpu_used = cpu_seconds(server) - cpu_before
                rate = outcome.values.get("wsgi_h1_keepalive", 0.0)
                requests = outcome.detail.get("requests", 0)
                per_request = (
                    cpu_used / requests * 1e6 if isinstance(requests, int) and requests else 0.0
                )
                print(
                    f"{spec.name} run {repeat + 1}: {rate:,.0f} req/s, "
                    f"{per_request:,.0f} us CPU/request {outcome.error or ''}"
                )
                best = results.get(spec.name, 0.0)
                results[spec.name] = max(rate, best if isinstance(best, float) else 0.0)
                if per_request:
                    least = cpu.get(spec.name, per_request)
                    cpu[spec.name] = min(per_request, least)
            finally:
                server.stop()
    for spec in chosen:  # in the table's order, failures named
        value = results.pop(spec.name, "failed")
        results[spec.name] = value if value else "failed"
    for name, value in cpu.items():
        results[f"_cpu {name}"] = value
    results["_command"] = ctx.commands.get("wsgi_h1_keepalive", "")
    return results


def section(results: dict[str, float | str], args: argparse.Namespace) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    packages = ", ".join(
        f"{name} {package_version(name)}"
        for name in ("tricorn", "hypercorn", "granian", "gunicorn")
    )
    lines = [
        SECTION,
        "",
        f"- Date: {now}; tricorn revision: {git_revision()}; {packages}",
        f"- `python -m benchmarks.wsgi --duration {args.duration:g} --repeat {args.repeat}"
        f" --threads {args.threads}`: `benchmarks.wsgi_app:app` (PEP 3333 hello world, "
        "Content-Length), one process on core 0, "
        f"{args.threads} threads where the server has a setting (gunicorn also with 4); "
        f"load `{results['_command']}` on core 1; best of {args.repeat} runs, the servers taking "
        "turns.",
        f"- Load average when it ended: {os.getloadavg()[0]:.1f} (other jobs on the machine: "
        "compare within the table, as ratios).",
        "",
        "CPU/request is the server's CPU time (user + system, all threads) over the requests "
        "of its least costly run: unlike requests/s it hardly moves when other jobs load the "
        "machine.",
        "",
        "| server | requests/s | vs hypercorn-asyncio | vs gunicorn-gthread | CPU us/request |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    base_h = results.get("hypercorn-asyncio")
    base_g = results.get("gunicorn-gthread")
    for name, value in results.items():
        if name.startswith("_"):
            continue
        if not isinstance(value, float):
            lines.append(f"| {name} | {value} | | | |")
            continue
        ratio_h = f"{value / base_h:.2f}x" if isinstance(base_h, float) else "n/a"
        ratio_g = f"{value / base_g:.2f}x" if isinstance(base_g, float) else "n/a"
        used = results.get(f"_cpu {name}")
        cost = f"{used:,.0f}" if isinstance(used, float) else "n/a"
        lines.append(f"| {name} | {value:,.0f} | {ratio_h} | {ratio_g} | {cost} |")
    notes = [value for name, value in results.items() if name.startswith("_note ")]
    if notes:
        lines += ["", *(f"- {note}" for note in notes if isinstance(note, str))]
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace the WSGI section of ``path`` (up to the next ``## `` heading), or append it."""
    old = path.read_text() if path.exists() else ""
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(old):
        new = pattern.sub(lambda _: text + "\n", old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [spec.name for spec in servers(1)]
    parser.add_argument("--servers", default=",".join(names), help="from: " + ", ".join(names))
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=2, help="runs per server (best kept)")
    parser.add_argument("--threads", type=int, default=40, help="worker threads per server")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    args.servers = set(args.servers.split(","))
    if (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})  # the harness and wrk stay off the server core
    results = run(args)
    text = section(results, args)
    print(text)
    write_section(args.output, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

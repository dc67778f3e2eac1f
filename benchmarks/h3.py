"""HTTP/3 benchmark: tricorn (trio, asyncio) against Hypercorn's HTTP/3 (asyncio, aioquic).

Each server serves ``benchmarks.apps:app`` with a TCP TLS bind and a QUIC bind on the same
port of 127.0.0.1 (a trustme certificate), pinned to core 0; the load client
(``benchmarks/h3_load.py``, ours, on aioquic: h2load here is built without HTTP/3) runs
pinned to core 1. Per server and round:

- ``hello``: ``GET /`` on ``--connections`` x ``--streams`` in flight for ``--duration`` s,
  requests/s, and the server's CPU time per request (``/proc/PID/stat``: the figure that
  means something on a busy machine);
- ``hello x2``: the same from two client processes at once (both on core 1): when the total
  is no higher than one client's, the server, not the client, is the limit;
- ``download``: ``--downloads`` sequential ``GET /download`` (10 MiB) on one connection,
  the median seconds per response.

Rounds take turns between the servers (``--rounds``, best round shown). Everything is on
loopback and bounded by the durations and counts given (and the client's own hard
timeout). The client's CPU seconds are reported beside its wall seconds.

    benchmarks/.venv-peers/bin/python benchmarks/h3.py --duration 5 --rounds 2
    benchmarks/.venv-peers/bin/python benchmarks/h3.py --smoke   # tricorn-trio only, ~15 s
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import REPO, Certs, free_port, make_certs, proc_stat, wait_listening

APP = "benchmarks.apps:app"
LOAD = Path(__file__).resolve().parent / "h3_load.py"
#: Server core and client core (as benchmarks/harness.py pins them); None with one core.
SERVER_CPU, CLIENT_CPU = (0, 1) if (os.cpu_count() or 1) > 1 else (None, None)


def server_command(name: str, port: int, certs: Certs) -> list[str]:
    tls = ["--certfile", str(certs.cert), "--keyfile", str(certs.key)]
    binds = ["--bind", f"127.0.0.1:{port}", "--quic-bind", f"127.0.0.1:{port}"]
    if name.startswith("tricorn-"):
        backend = name.removeprefix("tricorn-")
        return [
            sys.executable,
            "-m",
            "tricorn",
            APP,
            *binds,
            *tls,
            "--backend",
            backend,
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    if name == "hypercorn-asyncio":
        hypercorn = Path(sys.executable).parent / "hypercorn"
        return [
            str(hypercorn),
            APP,
            *binds,
            *tls,
            "--worker-class",
            "asyncio",
            "--workers",
            "1",
            "--log-level",
            "WARNING",
        ]
    raise SystemExit(f"unknown server {name!r}")


def pinned(command: list[str], cpu: int | None) -> list[str]:
    return command if cpu is None else ["taskset", "-c", str(cpu), *command]


@contextlib.contextmanager
def server(name: str, certs: Certs, root: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        pinned(server_command(name, port, certs), SERVER_CPU),
        cwd=root,
        env=env,
        start_new_session=True,  # its own process group: stopping it reaches only it
    )
    try:
        wait_listening(port, process=process)
        yield process, port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def cpu_seconds(group: int) -> float:
    """User + system CPU seconds so far of the processes in process group ``group`` (the
    server and, for Hypercorn, its worker process), from ``/proc/PID/stat``."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = proc_stat(int(entry))
        if fields is not None and int(fields[2]) == group:  # pgrp (field 5)
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


def load(port: int, certs: Certs, *options: str, clients: int = 1) -> list[dict[str, object]]:
    """Run ``clients`` load client processes at once; their JSON reports."""
    command = pinned(
        [sys.executable, str(LOAD), "--port", str(port), "--ca", str(certs.ca), *options],
        CLIENT_CPU,
    )
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, start_new_session=True)
        for _ in range(clients)
    ]
    reports = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        if proc.returncode != 0 or not out.strip():
            raise RuntimeError(f"the load client failed (status {proc.returncode})")
        reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    return reports


@dataclass
class Row:
    rps: float = 0.0
    cpu_us: float = 0.0  # server CPU microseconds per request
    client_cpu: float = 0.0  # client CPU seconds / wall seconds
    client_us: float = 0.0  # client CPU microseconds per request
    rps_two: float = 0.0
    download: float = 0.0  # median seconds per 10 MiB
    download_client_cpu: float = 0.0  # the client's CPU seconds / wall seconds downloading
    failed: int = 0


def measure(name: str, certs: Certs, args: argparse.Namespace, root: Path) -> Row:
    row = Row()
    hello = ["--connections", str(args.connections), "--streams", str(args.streams)]
    hello += ["--duration", str(args.duration)]
    with server(name, certs, root) as (process, port):
        load(port, certs, "--duration", "0.5", "--connections", "2")  # warm up
        before = cpu_seconds(process.pid)
        (one,) = load(port, certs, *hello)
        used = cpu_seconds(process.pid) - before
        done = int(one["done"])  # type: ignore[call-overload]
        seconds = float(one["seconds"])  # type: ignore[arg-type]
        row.rps = done / seconds
        row.cpu_us = used / max(done, 1) * 1e6
        row.client_cpu = float(one["cpu"]) / seconds  # type: ignore[arg-type]
        row.client_us = float(one["cpu"]) / max(done, 1) * 1e6  # type: ignore[arg-type]
        row.failed += int(one["failed"])  # type: ignore[call-overload]
        if not args.smoke:
            pair = load(port, certs, *hello, clients=2)
            row.rps_two = sum(
                int(r["done"]) / float(r["seconds"])  # type: ignore[call-overload,arg-type]
                for r in pair
            )
            row.failed += sum(int(r["failed"]) for r in pair)  # type: ignore[call-overload]
        (down,) = load(
            port,
            certs,
            "--path",
            "/download",
            "--connections",
            "1",
            "--streams",
            "1",
            "--count",
            str(args.downloads),
        )
        times = down["times"]
        assert isinstance(times, list)
        row.download = statistics.median(times) if times else float("nan")
        row.download_client_cpu = float(down["cpu"]) / float(down["seconds"])  # type: ignore[arg-type]
        row.failed += int(down["failed"])  # type: ignore[call-overload]
    return row


def best(rows: list[Row]) -> Row:
    return Row(
        rps=max(r.rps for r in rows),
        cpu_us=min(r.cpu_us for r in rows),
        client_cpu=max(r.client_cpu for r in rows),
        client_us=min(r.client_us for r in rows),
        rps_two=max(r.rps_two for r in rows),
        download=min(r.download for r in rows),
        download_client_cpu=max(r.download_client_cpu for r in rows),
        failed=sum(r.failed for r in rows),
    )


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs else "n/a"


def table(results: dict[str, Row], args: argparse.Namespace) -> str:
    load_average = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    lines = [
        f"HTTP/3, {args.connections} connections x {args.streams} streams, "
        f"{args.duration:g} s, best of {args.rounds}; load average {load_average}",
        "",
        "| server | hello req/s | server CPU us/req | client CPU us/req | client CPU/wall "
        "| hello req/s, 2 clients | 10 MiB download s | download client CPU/wall | failed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in results.items():
        lines.append(
            f"| {name} | {row.rps:.0f} | {row.cpu_us:.0f} | {row.client_us:.0f} | "
            f"{row.client_cpu:.2f} | "
            f"{row.rps_two:.0f} | {row.download:.3f} | {row.download_client_cpu:.2f} | "
            f"{row.failed} |"
        )
    peer = results.get("hypercorn-asyncio")
    if peer is not None:
        for name, row in results.items():
            if name.startswith("tricorn-"):
                lines.append(
                    f"| {name} / hypercorn | {_ratio(row.rps, peer.rps)} | "
                    f"{_ratio(row.cpu_us, peer.cpu_us)} | | | "
                    f"{_ratio(row.rps_two, peer.rps_two)} | "
                    f"{_ratio(row.download, peer.download)} | | |"
                )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="tricorn-trio,tricorn-asyncio,hypercorn-asyncio")
    parser.add_argument("--root", type=Path, default=REPO, help="tricorn checkout to run")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--downloads", type=int, default=3)
    parser.add_argument("--output", type=Path, help="also write the table here")
    parser.add_argument("--smoke", action="store_true", help="tricorn-trio, 2 s, one round")
    args = parser.parse_args()
    if args.smoke:
        args.servers, args.duration, args.rounds, args.downloads = "tricorn-trio", 2.0, 1, 1
    names = [name.strip() for name in args.servers.split(",") if name.strip()]
    runs: dict[str, list[Row]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as folder:
        certs = make_certs(Path(folder))
        for round_number in range(args.rounds):
            order = names if round_number % 2 == 0 else names[::-1]
            for name in order:
                started = time.monotonic()
                row = measure(name, certs, args, args.root)
                runs[name].append(row)
                print(
                    f"round {round_number + 1} {name}: {row.rps:.0f} req/s, "
                    f"{row.cpu_us:.0f} us CPU/req (client {row.client_us:.0f}), "
                    f"2 clients {row.rps_two:.0f} req/s, "
                    f"download {row.download:.3f} s ({time.monotonic() - started:.0f} s)",
                    flush=True,
                )
    results = {name: best(rows) for name, rows in runs.items()}
    text = table(results, args)
    print(text)
    if args.output:
        args.output.write_text(text)
    if args.smoke:
        row = results["tricorn-trio"]
        ok = row.rps > 0 and row.failed == 0 and row.download > 0
        print("smoke: OK" if ok else "smoke: FAILED")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

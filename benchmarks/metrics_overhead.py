"""What the metrics cost: hello-world requests/s with metrics off, with ``metrics_bind``
(Prometheus), and with ``metrics_bind`` plus ``statsd_host``, on one machine in one run.

    python -m benchmarks.metrics_overhead [--rounds 5] [--duration 4] [--backends trio,asyncio]

The three servers of a backend run side by side on core 0 (an idle one costs nothing); the
load tool on core 1 takes them in turn, off / prometheus / statsd (every other round the
other way round), ``--rounds`` times, so
that a change in the machine's load hits all three alike. Each round gives a ratio to the
"off" run of the same round; the figure is the median ratio. HTTP/1.1 keep-alive with wrk
(1 thread, 16 connections), h2c with h2load (16 connections x 32 streams). Each "on"
server is scraped after its run, and the scrape must count the requests the tool made.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

#: The harness's app (benchmarks/run.py): ``/`` is hello world.
APP = "benchmarks.apps:app"
VARIANTS = ("off", "prometheus", "prometheus+statsd")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the server on port {port} did not start")


def _start(backend: str, variant: str, sink: int) -> tuple[subprocess.Popen[bytes], int, int]:
    port, metrics_port = _free_port(), _free_port()
    command = ["taskset", "-c", "0", sys.executable, "-m", "tricorn", APP, "--no-access-log"]
    command += ["--backend", backend, "--bind", f"127.0.0.1:{port}"]
    if variant != "off":
        command += ["--metrics-bind", f"127.0.0.1:{metrics_port}"]
    if variant == "prometheus+statsd":
        command += ["--statsd-host", f"127.0.0.1:{sink}"]
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    _wait_for_port(port)
    return server, port, metrics_port


def _run_load(command: list[str], rate: str, done: str) -> tuple[float, int]:
    """Run a load tool on core 1; its requests/s and requests done, read from its output
    with the ``rate`` and ``done`` patterns (one group each)."""
    out = subprocess.run(
        ["taskset", "-c", "1", *command], capture_output=True, text=True, check=True
    ).stdout
    rate_match, done_match = re.search(rate, out), re.search(done, out)
    if rate_match is None or done_match is None:
        raise SystemExit(f"unexpected output of {command[0]}:\n{out}")
    return float(rate_match.group(1)), int(done_match.group(1))


def _wrk(port: int, duration: float) -> tuple[float, int]:
    command = ["wrk", "-t1", "-c16", f"-d{duration:g}s", f"http://127.0.0.1:{port}/"]
    return _run_load(command, r"Requests/sec:\s+([\d.]+)", r"(\d+) requests in")


def _h2load(port: int, duration: float) -> tuple[float, int]:
    command = ["h2load", "-c16", "-m32", "-D", f"{duration:g}", f"http://127.0.0.1:{port}/"]
    return _run_load(
        command,
        r"finished in [\d.]+\w+, ([\d.]+) req/s",
        r"requests: \d+ total, \d+ started, (\d+) done",
    )


def _median_ratios(values: dict[str, list[float]]) -> dict[str, float]:
    """Per "on" variant, the median over the rounds of its figure / the "off" figure."""
    return {
        variant: statistics.median(
            on / off for on, off in zip(values[variant], values["off"], strict=True)
        )
        for variant in VARIANTS[1:]
    }


def _cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def micro() -> tuple[float, float]:
    """Nanoseconds per request of (our hooks for one HTTP/1.1 keep-alive request: the
    response's count and duration, a read and a write (the requests in flight are counted
    at the snapshot, not per request); the
    same counts kept with prometheus_client's labelled Counter, Histogram and Gauge)."""
    import timeit

    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    from tricorn.protocols.events import Request
    from tricorn.server.metrics import Metrics

    metrics = Metrics()
    head = Request(1, b"GET", b"/", [], "1.1")
    counters = metrics.protocols[0]

    def ours() -> None:
        counters.bytes_received += 40
        counters.bytes_sent += 120
        metrics.response_done(head, 200, metrics.clock())

    registry = CollectorRegistry()
    requests = Counter("r_total", "", ["protocol", "method", "status"], registry=registry)
    duration = Histogram("d_seconds", "", ["protocol"], registry=registry)
    in_flight = Gauge("f", "", registry=registry)
    received = Counter("i_total", "", ["protocol"], registry=registry)
    sent = Counter("o_total", "", ["protocol"], registry=registry)
    clock = time.monotonic

    def library() -> None:
        received.labels("http/1.1").inc(40)
        in_flight.inc()
        start = clock()
        sent.labels("http/1.1").inc(120)
        requests.labels("http/1.1", "GET", "2xx").inc()
        duration.labels("http/1.1").observe(clock() - start)
        in_flight.dec()

    loops = 100_000
    figures = []
    for function in (ours, library):
        best = min(timeit.repeat(function, number=loops, repeat=5))
        figures.append(best / loops * 1e9)
    return figures[0], figures[1]


def _scraped_requests(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("tricorn_requests_total{")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--backends", default="trio,asyncio")
    args = parser.parse_args()
    print(f"load average before the run: {os.getloadavg()[0]:.2f}", flush=True)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a statsd that never reads
    sink.bind(("127.0.0.1", 0))
    sink_port = sink.getsockname()[1]
    tools = {"HTTP/1.1 keep-alive (wrk)": _wrk, "h2c 16x32 (h2load)": _h2load}
    rows: list[str] = []
    raw: dict[str, Any] = {}
    for backend in args.backends.split(","):
        servers = {variant: _start(backend, variant, sink_port) for variant in VARIANTS}
        try:
            for tool_name, tool in tools.items():
                rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
                cpu: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
                counted = {variant: 0 for variant in VARIANTS}
                for round_number in range(args.rounds):
                    # Every other round in reverse, so that a place in the order (first
                    # after the previous tool, last before the next) favours none.
                    order = VARIANTS if round_number % 2 == 0 else VARIANTS[::-1]
                    for variant in order:
                        pid = servers[variant][0].pid
                        before = _cpu_seconds(pid)
                        rate, done = tool(servers[variant][1], args.duration)
                        cpu[variant].append((_cpu_seconds(pid) - before) / max(done, 1) * 1e6)
                        rates[variant].append(rate)
                        counted[variant] += done
                for variant in VARIANTS[1:]:
                    seen = _scraped_requests(servers[variant][2])
                    # wrk's count leaves out the requests in flight when it stopped
                    if seen < counted[variant]:
                        raise SystemExit(
                            f"{backend} {variant}: scraped {seen} < {counted[variant]}"
                        )
                ratios, cpu_ratios = _median_ratios(rates), _median_ratios(cpu)
                raw[f"{backend} {tool_name} req/s"] = rates
                raw[f"{backend} {tool_name} CPU us/request"] = cpu
                rows.append(
                    f"| {backend} | {tool_name} | {statistics.median(rates['off']):,.0f} "
                    f"| {statistics.median(rates['prometheus']):,.0f} "
                    f"| {ratios['prometheus']:.3f} "
                    f"| {ratios['prometheus+statsd']:.3f} "
                    f"| {statistics.median(cpu['off']):.1f} "
                    f"| {cpu_ratios['prometheus']:.3f} "
                    f"| {cpu_ratios['prometheus+statsd']:.3f} |"
                )
                print(rows[-1], flush=True)
        finally:
            for server, _, _ in servers.values():
                server.terminate()
                server.wait(timeout=30)
    sink.close()
    print()
    print(
        "| backend | load | off, req/s | prometheus, req/s | prometheus / off | "
        "+ statsd / off | off, CPU us/request | prometheus / off, CPU | + statsd / off, CPU |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(row)
    print()
    for name, rates in raw.items():
        print(
            name, {variant: [round(rate) for rate in values] for variant, values in rates.items()}
        )
    ours, library = micro()
    print(f"counting one request: our hooks {ours:.0f} ns, prometheus_client {library:.0f} ns")
    print(f"load average after the run: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

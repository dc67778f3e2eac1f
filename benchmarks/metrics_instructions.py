"""What the metrics cost, counted rather than timed: the server's instructions and system
calls per hello-world request with metrics off, with ``metrics_bind`` (Prometheus), with
``statsd_host``, and with both.

    python benchmarks/metrics_instructions.py [--requests 2000] [--warmup 300] \\
        [--backends asyncio,trio,uvloop] [--protocols h1,h1close,h2c] [--no-strace] \\
        [--no-callgrind] [--repeat N] [--http1-parser tricorn|httptools|h11]

Requests/s on a loaded 2-core machine move by more than the 3% being looked for; these
counts do not. For each backend, protocol and variant:

- instructions: the server runs under ``valgrind --tool=callgrind`` (every thread counted
  together); a client sends ``--warmup`` requests, the counters are zeroed
  (``callgrind_control -z``), the client sends exactly ``--requests`` more, and the counters
  are dumped (``callgrind_control -d``): instructions / requests. HTTP/1.1 (``h1``): one
  keep-alive connection, one request at a time; ``h1close``: a new connection per request,
  sent with ``connection: close`` and read to the server's close; h2c: one connection, waves
  of 8 streams written at once.
  The statsd flush is per second, not per request, so it is left out of that window
  (``--statsd-interval 3600``) and counted apart: the instructions of an idle window of
  ``--idle`` seconds with the default 1 s interval, per flush.
- system calls: the same client against the server run natively, ``strace -f -c`` attached
  for the measured requests only: calls per request by name, all threads.
- threads: the server's threads (``/proc/PID/task``) after the run.

The server's hash seed is fixed (``PYTHONHASHSEED=0``) so that two runs of one variant
count nearly the same; what still moves (by up to ~1.3%) is work that follows the wall
clock under valgrind (timers). ``--repeat N`` runs the variants N times in rounds (off,
prometheus, statsd, both, then again) and gives each cell's median and every count.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = "benchmarks.apps:app"
VARIANTS = ("off", "prometheus", "statsd", "both")
REQUEST = b"GET / HTTP/1.1\r\nhost: bench\r\n\r\n"
CLOSE_REQUEST = b"GET / HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n"
WAVE = 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, server: subprocess.Popen[bytes], limit: float = 300) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited ({server.returncode}) before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server on port {port} did not start in {limit:g} s")


SERVER_OPTIONS = ["--http1-parser", "tricorn"]  # set from --http1-parser


def server_command(backend: str, variant: str, port: int, sink: int, interval: float) -> list[str]:
    command = [sys.executable, "-m", "tricorn", APP, "--no-access-log", "--backend", backend]
    command += SERVER_OPTIONS
    command += ["--bind", f"127.0.0.1:{port}"]
    if variant in ("prometheus", "both"):
        command += ["--metrics-bind", f"127.0.0.1:{_free_port()}"]
    if variant in ("statsd", "both"):
        command += ["--statsd-host", f"127.0.0.1:{sink}", "--statsd-interval", f"{interval:g}"]
    return command


# --- the clients: exactly N requests -----------------------------------------------------


class H1Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def run(self, count: int) -> None:
        for _ in range(count):
            self.sock.sendall(REQUEST)
            self._read_response()

    def _read_response(self) -> None:
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = self.buffer[:end].lower()
        match = re.search(rb"content-length: *(\d+)", head)
        if not head.startswith(b"http/1.1 200") or match is None:
            raise SystemExit(f"unexpected response: {head!r}")
        total = end + 4 + int(match.group(1))
        while len(self.buffer) < total:
            self._fill()
        self.buffer = self.buffer[total:]

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise SystemExit("the server closed the connection")
        self.buffer += data

    def close(self) -> None:
        self.sock.close()


class H1CloseClient:
    """One connection per request, ``connection: close``; the response is read to EOF."""

    def __init__(self, port: int) -> None:
        self.port = port

    def run(self, count: int) -> None:
        for _ in range(count):
            with socket.create_connection(("127.0.0.1", self.port)) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.sendall(CLOSE_REQUEST)
                response = b""
                while data := sock.recv(65536):
                    response += data
            if not response.lower().startswith(b"http/1.1 200"):
                raise SystemExit(f"unexpected response: {response[:200]!r}")

    def close(self) -> None:
        pass


class H2Client:
    def __init__(self, port: int) -> None:
        import h2.config
        import h2.connection

        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())

    def run(self, count: int) -> None:
        import h2.events

        headers = [(":method", "GET"), (":path", "/"), (":scheme", "http")]
        headers.append((":authority", "bench"))
        done = 0
        while done < count:
            wave = min(WAVE, count - done)
            open_streams = set()
            for _ in range(wave):
                stream_id = self.conn.get_next_available_stream_id()
                self.conn.send_headers(stream_id, headers, end_stream=True)
                open_streams.add(stream_id)
            self.sock.sendall(self.conn.data_to_send())
            while open_streams:
                data = self.sock.recv(65536)
                if not data:
                    raise SystemExit("the server closed the connection")
                for event in self.conn.receive_data(data):
                    if isinstance(event, h2.events.DataReceived):
                        self.conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        open_streams.discard(event.stream_id)
                    elif isinstance(event, h2.events.StreamReset):
                        raise SystemExit(f"stream {event.stream_id} reset")
                if pending := self.conn.data_to_send():
                    self.sock.sendall(pending)
            done += wave

    def close(self) -> None:
        self.sock.close()


CLIENTS: dict[str, type[H1Client] | type[H1CloseClient] | type[H2Client]] = {
    "h1": H1Client,
    "h1close": H1CloseClient,
    "h2c": H2Client,
}


# --- instructions --------------------------------------------------------------------------


def _callgrind_total(path: str) -> int:
    with open(path) as file:
        for line in file:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit(f"no totals in {path}")


def _dump(pid: int, outdir: str, label: str) -> int:
    """Dump the counters since the last zeroing; return the instructions."""
    before = set(glob.glob(f"{outdir}/cg.{pid}.*"))
    subprocess.run(["callgrind_control", "-d", label, str(pid)], check=True, capture_output=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        new = set(glob.glob(f"{outdir}/cg.{pid}.*")) - before
        if new:
            path = new.pop()
            time.sleep(0.5)  # let it finish writing
            if keep := os.environ.get("METRICS_CALLGRIND_KEEP"):
                shutil.copy(path, f"{keep}.{label}")
            return _callgrind_total(path)
        time.sleep(0.2)
    raise SystemExit("callgrind_control -d wrote no dump")


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=120)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _valgrind(
    backend: str, variant: str, port: int, sink: int, interval: float, outdir: str
) -> subprocess.Popen[bytes]:
    """The server under callgrind, its dumps in ``outdir``."""
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={outdir}/cg.%p"]
    command += ["--dump-instr=no", "--dump-line=no"]
    command += server_command(backend, variant, port, sink, interval)
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, env=env, cwd=outdir, stderr=subprocess.DEVNULL)


def _zero(pid: int) -> None:
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)


def instructions(
    backend: str, protocol: str, variant: str, args: argparse.Namespace, sink: int
) -> dict[str, float]:
    port = _free_port()
    outdir = tempfile.mkdtemp(prefix="tricorn-cg-")
    server = _valgrind(backend, variant, port, sink, 3600, outdir)
    result: dict[str, float] = {}
    try:
        _wait_for_port(port, server)
        client = CLIENTS[protocol](port)
        client.run(args.warmup)
        _zero(server.pid)
        client.run(args.requests)
        label = f"{backend}-{protocol}-{variant}"  # METRICS_CALLGRIND_KEEP's file suffix
        result["per_request"] = _dump(server.pid, outdir, label) / args.requests
        client.close()
        result["threads"] = len(os.listdir(f"/proc/{server.pid}/task"))
    finally:
        _stop(server)
        shutil.rmtree(outdir, ignore_errors=True)
    return result


def idle_flush(backend: str, args: argparse.Namespace, sink: int) -> dict[str, float]:
    """Instructions of ``--idle`` seconds with no request, statsd on (1 s interval) and off;
    the difference per flush (the flushes counted at the sink)."""
    figures: dict[str, float] = {}
    for variant in ("off", "statsd"):
        port = _free_port()
        outdir = tempfile.mkdtemp(prefix="tricorn-cg-")
        server = _valgrind(backend, variant, port, sink, 1.0, outdir)
        try:
            _wait_for_port(port, server)
            client = H1Client(port)
            client.run(args.warmup)  # the flushes then have counts to send
            client.close()
            time.sleep(2.5)
            _zero(server.pid)
            started = time.monotonic()
            time.sleep(args.idle)
            total = _dump(server.pid, outdir, "idle")
            figures[f"{variant}_idle_seconds"] = time.monotonic() - started
            figures[f"{variant}_idle"] = total
        finally:
            _stop(server)
            shutil.rmtree(outdir, ignore_errors=True)
    return figures


# --- system calls --------------------------------------------------------------------------

_STRACE_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")


def syscalls(
    backend: str, protocol: str, variant: str, args: argparse.Namespace, sink: int
) -> tuple[dict[str, float], int]:
    """System calls per request by name (all threads), and the number of threads."""
    port = _free_port()
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
    command = server_command(backend, variant, port, sink, interval=1.0)
    server = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    out = tempfile.mktemp(prefix="tricorn-strace-")
    try:
        _wait_for_port(port, server)
        client = CLIENTS[protocol](port)
        client.run(args.warmup)
        tracer = subprocess.Popen(
            ["strace", "-f", "-c", "-o", out, "-p", str(server.pid)], stderr=subprocess.DEVNULL
        )
        time.sleep(1.0)  # strace attaches to every thread
        client.run(args.requests)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=60)
        client.close()
        threads = len(os.listdir(f"/proc/{server.pid}/task"))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    counts: dict[str, float] = {}
    with open(out) as file:
        for line in file:
            match = _STRACE_ROW.match(line)
            if match and match.group(2) != "total":
                counts[match.group(2)] = int(match.group(1)) / args.requests
    os.unlink(out)
    return counts, threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--backends", default="asyncio,trio")
    parser.add_argument("--protocols", default="h1,h2c")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--no-strace", action="store_true")
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--no-idle", action="store_true")
    parser.add_argument("--only-idle", action="store_true", help="only the flush's cost")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the variants")
    parser.add_argument("--http1-parser", default="tricorn", help="tricorn, httptools, h11")
    args = parser.parse_args()
    SERVER_OPTIONS[:] = ["--http1-parser", args.http1_parser]
    variants = args.variants.split(",")
    print(f"load average: {os.getloadavg()[0]:.2f}", flush=True)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a statsd that never reads
    sink.bind(("127.0.0.1", 0))
    sink_port = sink.getsockname()[1]
    rows = []
    for backend in args.backends.split(","):
        for protocol in [] if args.only_idle else args.protocols.split(","):
            runs: dict[str, list[float]] = {variant: [] for variant in variants}
            for _round, variant in itertools.product(range(args.repeat), variants):
                line = f"{backend} {protocol} {variant}:"
                if not args.no_callgrind:
                    figures = instructions(backend, protocol, variant, args, sink_port)
                    runs[variant].append(figures["per_request"])
                    line += f" {figures['per_request']:,.0f} instructions/request"
                    line += f" ({figures['threads']:.0f} threads under valgrind)"
                if not args.no_strace:
                    calls, threads = syscalls(backend, protocol, variant, args, sink_port)
                    total = sum(calls.values())
                    shown = ", ".join(
                        f"{name} {n:.2f}" for name, n in sorted(calls.items()) if n >= 0.005
                    )
                    line += f"; {total:.2f} syscalls/request ({shown}); {threads} threads"
                print(line, flush=True)
            counted = {v: statistics.median(n) for v, n in runs.items() if n}
            if "off" in counted:
                base = counted["off"]
                cells = " | ".join(
                    f"{counted[v]:,.0f} ({counted[v] / base - 1:+.2%})"
                    + ("" if len(runs[v]) < 2 else f" [{', '.join(f'{n:,.0f}' for n in runs[v])}]")
                    for v in variants
                    if v in counted
                )
                rows.append(f"| {backend} | {protocol} | {cells} |")
        if not args.no_idle and not args.no_callgrind:
            idle = idle_flush(backend, args, sink_port)
            extra = idle["statsd_idle"] - idle["off_idle"]
            print(
                f"{backend} idle {args.idle:g} s: off {idle['off_idle']:,.0f}, statsd "
                f"{idle['statsd_idle']:,.0f} instructions ({idle['statsd_idle_seconds']:.1f} s):"
                f" {extra / idle['statsd_idle_seconds']:,.0f} instructions per second of flushes",
                flush=True,
            )
    sink.close()
    if rows:
        print()
        print("| backend | protocol | " + " | ".join(variants) + " |")
        print("| --- | --- |" + " ---: |" * len(variants))
        for row in rows:
            print(row)


if __name__ == "__main__":
    main()

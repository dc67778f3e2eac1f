"""The load scenarios: what each one runs against a ready server, and how it reads the result.

Every load tool runs as its own process group pinned to the load core, bounded by its own
duration flag and by a hard timeout after which the harness kills that group (and only it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.apps import DOWNLOAD_SIZE
from benchmarks.harness import parse_wrk
from benchmarks.harness import seconds as _seconds
from benchmarks.servers import H1, H2C, H2TLS, WS, RunningServer, hello_check

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    unit: str
    higher_is_better: bool = True


@dataclass
class Context:
    duration: float
    load_cpu: int | None
    workdir: Path  # upload file, TLS files, logs
    latency_rate: float
    idle_counts: tuple[int, ...]
    log: Callable[[str], None]
    commands: dict[str, str] = field(default_factory=dict)  # scenario -> command template


@dataclass
class Outcome:
    values: dict[str, float]  # metric key -> value
    detail: dict[str, object] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    group: str  # the RESULTS.md table it belongs to
    feature: str  # H1, H2C, H2TLS or WS: what the server must support
    metrics: tuple[Metric, ...]
    run: Callable[[Context, RunningServer], Outcome]
    tool: str | None = None  # the external program it needs, if any
    fresh_server: bool = False  # needs a server of its own for each repetition

    @property
    def tls(self) -> bool:
        return self.feature == H2TLS


# --- running a load tool ----------------------------------------------------------------


def run_tool(ctx: Context, argv: list[str], timeout: float) -> tuple[int, str]:
    """Run one load-tool process group on the load core; kill it if it overruns."""
    if ctx.load_cpu is not None:
        argv = ["taskset", "-c", str(ctx.load_cpu), *argv]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return -1, f"timed out after {timeout:.0f}s\n{out}"
    return proc.returncode, out


def shown(ctx: Context, argv: list[str], port: int) -> str:
    """A command as RESULTS.md shows it: the port and the scratch directory as names."""
    text = shlex.join(argv).replace(f":{port}", ":PORT")
    return text.replace(str(ctx.workdir), "$TMP")


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


# --- wrk: HTTP/1.1 hello ------------------------------------------------------------------


def _wrk(ctx: Context, server: RunningServer, extra: list[str], key: str) -> Outcome:
    dur = max(1, round(ctx.duration))
    argv = ["wrk", "-t1", "-c64", f"-d{dur}s", *extra, f"http://127.0.0.1:{server.port}/"]
    ctx.commands.setdefault(key, shown(ctx, argv, server.port))
    code, out = run_tool(ctx, argv, dur + 30)
    report = parse_wrk(out)
    if code != 0 or report is None:
        return Outcome({}, error=f"wrk failed ({code}): {_tail(out)}")
    detail: dict[str, object] = {
        "requests": report.requests,
        "seconds": report.seconds,
        "non_2xx": report.non_2xx,
    }
    if report.socket_errors_line:
        detail["socket_errors"] = report.socket_errors_line
    good = report.requests - report.non_2xx
    if good <= 0:
        return Outcome({}, detail, error=f"no successful response: {_tail(out)}")
    return Outcome({key: good / report.seconds}, detail)


def hello_h1_keepalive(ctx: Context, server: RunningServer) -> Outcome:
    return _wrk(ctx, server, [], "h1_keepalive")


def wrk_latency_ms(out: str) -> dict[str, float]:
    """p50, p99 and max in ms from wrk's ``--latency`` report ("Latency avg stdev max"
    and the "Latency Distribution" lines); what it lacks is left out."""
    found: dict[str, float] = {}
    line = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)\s", out)
    if line:
        found["max"] = _seconds(line.group(1), line.group(2)) * 1000
    for label, key in (("50", "p50"), ("99", "p99")):
        share = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
        if share:
            found[key] = _seconds(share.group(1), share.group(2)) * 1000
    return found


def saturation_h1(ctx: Context, server: RunningServer) -> Outcome:
    """wrk -c64 as fast as the server goes, with its latency distribution."""
    dur = max(1, round(ctx.duration))
    url = f"http://127.0.0.1:{server.port}/"
    argv = ["wrk", "-t1", "-c64", f"-d{dur}s", "--timeout", "10s", "--latency", url]
    ctx.commands.setdefault("saturation_h1", shown(ctx, argv, server.port))
    code, out = run_tool(ctx, argv, dur + 30)
    report = parse_wrk(out)
    if code != 0 or report is None:
        return Outcome({}, error=f"wrk failed ({code}): {_tail(out)}")
    found = wrk_latency_ms(out)
    values = {f"sat_{key}": value for key, value in found.items()}
    detail: dict[str, object] = {"requests": report.requests, "seconds": report.seconds}
    if report.failed:
        return Outcome(values, detail, error=f"{report.failed} failed: {_tail(out)}")
    return Outcome(values, detail)


def hello_h1_close(ctx: Context, server: RunningServer) -> Outcome:
    return _wrk(ctx, server, ["-H", "Connection: close"], "h1_close")


# --- h2load: HTTP/2 hello and the large bodies --------------------------------------------


def _h2load(
    ctx: Context, server: RunningServer, key: str, path: str, options: list[str]
) -> tuple[Outcome, dict[str, float]]:
    """Run h2load for the duration; return (outcome with detail, parsed numbers)."""
    dur = max(1, round(ctx.duration))
    scheme = "https" if server.tls else "http"
    url = f"{scheme}://127.0.0.1:{server.port}{path}"
    argv = ["h2load", "-t1", "-D", str(dur), *options, url]
    ctx.commands.setdefault(key, shown(ctx, argv, server.port))
    code, out = run_tool(ctx, argv, dur + 30)
    parsed: dict[str, float] = {}
    fin = re.search(r"finished in ([\d.]+)(us|ms|s|m|h)", out)
    req = re.search(r"requests: .*?(\d+) succeeded, (\d+) failed, (\d+) errored", out)
    status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    traffic = re.search(r"traffic: .*?\((\d+)\) total.*?\((\d+)\) data", out)
    if fin and req and status:
        parsed["seconds"] = _seconds(fin.group(1), fin.group(2))
        parsed["succeeded"] = float(req.group(1))
        parsed["failed"] = float(req.group(2)) + float(req.group(3))
        parsed["ok"] = float(status.group(1))
        parsed["bad_status"] = float(status.group(3)) + float(status.group(4))
    if traffic:
        parsed["data_bytes"] = float(traffic.group(2))
    proto = re.search(r"Application protocol: (\S+)", out)
    detail: dict[str, object] = dict(parsed)
    if proto:
        detail["protocol"] = proto.group(1)
    if not parsed or parsed["ok"] <= 0 or parsed["seconds"] <= 0:
        return Outcome(
            {}, detail, error=f"h2load: no successful response ({code}): {_tail(out)}"
        ), {}
    wanted = "http/1.1" if "--h1" in options else "h2" if server.tls else "h2c"
    if proto and proto.group(1) != wanted:
        return Outcome({}, detail, error=f"negotiated {proto.group(1)}, not {wanted}"), {}
    return Outcome({}, detail), parsed


def _hello_h2(ctx: Context, server: RunningServer, key: str) -> Outcome:
    outcome, parsed = _h2load(ctx, server, key, "/", ["-c16", "-m32"])
    if parsed:
        outcome.values[key] = parsed["ok"] / parsed["seconds"]
    return outcome


def hello_h2c(ctx: Context, server: RunningServer) -> Outcome:
    return _hello_h2(ctx, server, "h2c")


def hello_h2_tls(ctx: Context, server: RunningServer) -> Outcome:
    return _hello_h2(ctx, server, "h2_tls")


def upload_file(ctx: Context) -> Path:
    path = ctx.workdir / "upload-10MiB.bin"
    if not path.exists() or path.stat().st_size != DOWNLOAD_SIZE:
        path.write_bytes(os.urandom(DOWNLOAD_SIZE))
    return path


def body_count(duration: float) -> int:
    """10 MiB transfers per HTTP/1.1 body run: 2 connections x 4 per second of --duration."""
    return 2 * max(3, round(duration * 4))


def _curl_body(ctx: Context, server: RunningServer, key: str, upload: bool) -> Outcome:
    """HTTP/1.1 bodies with curl: a bounded count of transfers over 2 keep-alive connections.

    curl rather than ``h2load --h1``: h2load's HTTP/1.1 parser rejects a status line with
    an empty reason phrase (``HTTP/1.1 200 ``, which Hypercorn sends) and counts every
    such response as failed.
    """
    path = "/upload" if upload else "/download"
    count = body_count(ctx.duration)
    half = count // 2
    argv = ["curl", "--silent", "--show-error", "--max-time", str(round(ctx.duration) + 60)]
    argv += [
        "--parallel",
        "--parallel-max",
        "2",
        "--write-out",
        "%{http_code} %{size_download} %{size_upload}\\n",
    ]
    if upload:
        argv += ["--data-binary", f"@{upload_file(ctx)}"]
    for part in ("a", "b"):
        argv += ["--output", "/dev/null", f"http://127.0.0.1:{server.port}{path}?{part}=[1-{half}]"]
    ctx.commands.setdefault(key, shown(ctx, argv, server.port))
    start = time.perf_counter()
    code, out = run_tool(ctx, argv, ctx.duration + 90)
    seconds = time.perf_counter() - start
    rows = [line.split() for line in out.splitlines() if re.fullmatch(r"\d{3} \d+ \d+", line)]
    ok = [r for r in rows if r[0] == "200"]
    moved = sum(int(r[2] if upload else r[1]) for r in ok)
    detail: dict[str, object] = {"transfers": len(rows), "ok": len(ok), "seconds": seconds}
    if code != 0 or len(ok) != count:
        return Outcome({}, detail, error=f"curl ({code}): {len(ok)}/{count} ok: {_tail(out)}")
    if moved != count * DOWNLOAD_SIZE:
        return Outcome({}, detail, error=f"moved {moved} bytes, expected {count} x 10 MiB")
    return Outcome({key: moved / seconds / 1e6}, detail)


def _body(ctx: Context, server: RunningServer, key: str, upload: bool) -> Outcome:
    """HTTP/2 bodies with h2load for the duration, 2 connections x 1 stream."""
    options = ["-c2", "-m1"]
    if upload:
        options += ["-d", str(upload_file(ctx))]
    outcome, parsed = _h2load(ctx, server, key, "/upload" if upload else "/download", options)
    if parsed:
        if upload:
            moved = parsed["ok"] * DOWNLOAD_SIZE
        else:
            moved = parsed.get("data_bytes", parsed["ok"] * DOWNLOAD_SIZE)
        if parsed["bad_status"]:
            outcome.error = f"{parsed['bad_status']:.0f} responses with status 4xx/5xx"
        else:
            outcome.values[key] = moved / parsed["seconds"] / 1e6
    return outcome


def download_h1(ctx: Context, server: RunningServer) -> Outcome:
    return _curl_body(ctx, server, "download_h1", upload=False)


def upload_h1(ctx: Context, server: RunningServer) -> Outcome:
    return _curl_body(ctx, server, "upload_h1", upload=True)


def download_h2(ctx: Context, server: RunningServer) -> Outcome:
    return _body(ctx, server, "download_h2", upload=False)


def upload_h2(ctx: Context, server: RunningServer) -> Outcome:
    return _body(ctx, server, "upload_h2", upload=True)


# --- our own clients: WebSocket echo and paced latency -------------------------------------


def _own_client(
    ctx: Context, server: RunningServer, key: str, script: str, options: list[str]
) -> tuple[Outcome, dict[str, object]]:
    argv = [sys.executable, str(HERE / script), "--port", str(server.port), *options]
    shown = ["python", f"benchmarks/{script}", "--port", "PORT", *options]
    ctx.commands.setdefault(key, shlex.join(shown))
    code, out = run_tool(ctx, argv, ctx.duration + 40)
    lines = [line for line in out.strip().splitlines() if line.startswith("{")]
    if not lines:
        return Outcome({}, error=f"{script} failed ({code}): {_tail(out)}"), {}
    result: dict[str, object] = json.loads(lines[-1])
    if "error" in result:
        return Outcome({}, result, error=str(result["error"])), {}
    return Outcome({}, result), result


def _ws(ctx: Context, server: RunningServer, key: str, size: int) -> Outcome:
    options = ["--size", str(size), "--connections", "16", "--duration", str(ctx.duration)]
    outcome, result = _own_client(ctx, server, key, "ws_client.py", options)
    if result:
        errors = result.get("errors")
        if errors:
            outcome.error = f"ws client: {errors}"
        else:
            outcome.values[key] = float(str(result["rate"]))
    return outcome


def ws_small(ctx: Context, server: RunningServer) -> Outcome:
    return _ws(ctx, server, "ws_64B", 64)


def ws_large(ctx: Context, server: RunningServer) -> Outcome:
    return _ws(ctx, server, "ws_64KiB", 65536)


# Our paced h2c client (h2 in Python, one process) used 93% of its core at 8,000 req/s
# over 2 connections and 79% at 4,000 over 8:
# faster, its own lag would be the latency measured. HTTP/2 is paced at most at this rate.
H2_LATENCY_MAX_RATE = 3000.0


def latency_rate(ctx: Context, proto: str) -> float:
    """The paced rate for ``proto``: the run's rate, for h2 at most ``H2_LATENCY_MAX_RATE``."""
    return min(ctx.latency_rate, H2_LATENCY_MAX_RATE) if proto == "h2" else ctx.latency_rate


def _latency(ctx: Context, server: RunningServer, proto: str) -> Outcome:
    options = [
        "--proto",
        proto,
        "--rate",
        f"{latency_rate(ctx, proto):g}",
        "--connections",
        "8",
        "--duration",
        str(ctx.duration),
    ]
    outcome, result = _own_client(ctx, server, f"latency_{proto}", "latency_client.py", options)
    if result:
        if result.get("errors"):
            outcome.error = f"{result['errors']} errors: {result.get('first_errors')}"
        else:
            outcome.values[f"{proto}_p50"] = float(str(result["p50_ms"]))
            outcome.values[f"{proto}_p99"] = float(str(result["p99_ms"]))
    return outcome


def fairness_h1(ctx: Context, server: RunningServer) -> Outcome:
    """Our own closed-loop client, 64 connections: does every connection get its turn?"""
    options = ["--proto", "h1", "--rate", "0", "--connections", "64"]
    options += ["--duration", str(ctx.duration)]
    outcome, result = _own_client(ctx, server, "fairness_h1", "latency_client.py", options)
    if result:
        counts = result.get("per_connection")
        if result.get("errors"):
            outcome.error = f"{result['errors']} errors: {result.get('first_errors')}"
        elif isinstance(counts, dict):
            outcome.values["fair_ratio"] = float(counts["fairness"])
            outcome.values["fair_p99"] = float(str(result["p99_ms"]))
            outcome.values["fair_max"] = float(str(result["max_ms"]))
    return outcome


def latency_h1(ctx: Context, server: RunningServer) -> Outcome:
    return _latency(ctx, server, "h1")


def latency_h2(ctx: Context, server: RunningServer) -> Outcome:
    return _latency(ctx, server, "h2")


# --- idle keep-alive connections, opened by the harness itself -----------------------------

_IDLE_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _read_response(sock: socket.socket) -> bool:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    length = int(m.group(1)) if m else 0
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            return False
        body += chunk
    return head.startswith(b"HTTP/1.1 200")


def _open_idle(port: int, count: int, conns: list[socket.socket], deadline: float) -> None:
    """Open keep-alive connections (each answers one GET /) until there are `count`."""
    batch = 100
    while len(conns) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(conns)} connections open in time")
        new = []
        for _ in range(min(batch, count - len(conns))):
            sock = socket.create_connection(("127.0.0.1", port), timeout=15)
            new.append(sock)
            conns.append(sock)  # closed by the caller even on error
        for sock in new:
            sock.sendall(_IDLE_REQUEST)
        for sock in new:
            if not _read_response(sock):
                raise ConnectionError("a connection got no 200 answer")


def _closed_by_server(conns: list[socket.socket]) -> int:
    """How many of these connections the server has closed (readable = EOF or junk)."""
    poller = select.poll()
    for sock in conns:
        poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
    return len(poller.poll(0))


def idle(ctx: Context, server: RunningServer) -> Outcome:
    ctx.commands.setdefault(
        "idle",
        "harness: open N keep-alive connections, one GET / each, in batches of 100; "
        "sum VmRSS of the server's process group after 2 s",
    )
    conns: list[socket.socket] = []
    values: dict[str, float] = {}
    detail: dict[str, object] = {}
    try:
        for _ in range(20):  # warm up the request path before the baseline
            server_problem = hello_check(server.port)
            if server_problem:
                return Outcome({}, error=server_problem)
        time.sleep(1.0)
        base = server.rss_kib()
        detail["rss_base_kib"] = base
        deadline = time.monotonic() + 120
        for count in ctx.idle_counts:
            _open_idle(server.port, count, conns, deadline)
            time.sleep(2.0)
            rss = server.rss_kib()
            closed = _closed_by_server(conns)
            detail[f"rss_{count}_kib"] = rss
            detail[f"closed_{count}"] = closed
            if closed:
                return Outcome(values, detail, error=f"server closed {closed} of {count} idle")
            values[f"idle_{count}"] = (rss - base) / count
    except (OSError, TimeoutError, ConnectionError) as exc:
        return Outcome(values, detail, error=f"{type(exc).__name__}: {exc} ({len(conns)} open)")
    finally:
        for sock in conns:
            sock.close()
    return Outcome(values, detail)


# --- the catalogue ------------------------------------------------------------------------

HELLO = "Hello, world — requests/s (higher is better)"
BODIES = "Large bodies, 10 MiB each — MB/s, 1 MB = 10^6 bytes (higher is better)"
WEBSOCKET = "WebSocket echo — messages/s, 16 connections (higher is better)"
IDLE = "Idle keep-alive connections — server RSS KiB per connection (lower is better)"
LATENCY = "Latency at a fixed rate — ms (lower is better)"
SATURATION = (
    "Latency under saturation, HTTP/1.1 keep-alive, 64 connections — ms (lower is better); "
    "fairness = fewest / most answers of one connection (1 = every connection got its turn)"
)

GROUPS = [HELLO, BODIES, WEBSOCKET, IDLE, LATENCY, SATURATION]


def idle_metrics(counts: tuple[int, ...]) -> tuple[Metric, ...]:
    return tuple(Metric(f"idle_{n}", f"{n:,} idle", "KiB/conn", False) for n in counts)


def catalogue(idle_counts: tuple[int, ...] = (1000, 10000)) -> list[Scenario]:
    lat = [
        Metric("h1_p50", "HTTP/1.1 p50", "ms", False),
        Metric("h1_p99", "HTTP/1.1 p99", "ms", False),
    ]
    lat2 = [Metric("h2_p50", "h2c p50", "ms", False), Metric("h2_p99", "h2c p99", "ms", False)]
    return [
        Scenario(
            "hello-h1-keepalive",
            HELLO,
            H1,
            (Metric("h1_keepalive", "HTTP/1.1 keep-alive", "req/s"),),
            hello_h1_keepalive,
            tool="wrk",
        ),
        Scenario(
            "hello-h1-close",
            HELLO,
            H1,
            (Metric("h1_close", "HTTP/1.1 Connection: close", "req/s"),),
            hello_h1_close,
            tool="wrk",
        ),
        Scenario(
            "hello-h2c",
            HELLO,
            H2C,
            (Metric("h2c", "h2c 16x32", "req/s"),),
            hello_h2c,
            tool="h2load",
        ),
        Scenario(
            "hello-h2-tls",
            HELLO,
            H2TLS,
            (Metric("h2_tls", "h2 TLS 16x32", "req/s"),),
            hello_h2_tls,
            tool="h2load",
        ),
        Scenario(
            "download-h1",
            BODIES,
            H1,
            (Metric("download_h1", "HTTP/1.1 download", "MB/s"),),
            download_h1,
            tool="curl",
        ),
        Scenario(
            "upload-h1",
            BODIES,
            H1,
            (Metric("upload_h1", "HTTP/1.1 upload", "MB/s"),),
            upload_h1,
            tool="curl",
        ),
        Scenario(
            "download-h2",
            BODIES,
            H2C,
            (Metric("download_h2", "h2c download", "MB/s"),),
            download_h2,
            tool="h2load",
        ),
        Scenario(
            "upload-h2",
            BODIES,
            H2C,
            (Metric("upload_h2", "h2c upload", "MB/s"),),
            upload_h2,
            tool="h2load",
        ),
        Scenario("ws-64B", WEBSOCKET, WS, (Metric("ws_64B", "64 B", "msg/s"),), ws_small),
        Scenario("ws-64KiB", WEBSOCKET, WS, (Metric("ws_64KiB", "64 KiB", "msg/s"),), ws_large),
        Scenario("idle", IDLE, H1, idle_metrics(idle_counts), idle, fresh_server=True),
        Scenario("latency-h1", LATENCY, H1, tuple(lat), latency_h1),
        Scenario("latency-h2", LATENCY, H2C, tuple(lat2), latency_h2),
        Scenario(
            "saturation-h1",
            SATURATION,
            H1,
            (
                Metric("sat_p50", "wrk p50", "ms", False),
                Metric("sat_p99", "wrk p99", "ms", False),
                Metric("sat_max", "wrk max", "ms", False),
            ),
            saturation_h1,
            tool="wrk",
        ),
        Scenario(
            "fairness-h1",
            SATURATION,
            H1,
            (
                Metric("fair_ratio", "fairness (own client)", "ratio"),
                Metric("fair_p99", "own client p99", "ms", False),
                Metric("fair_max", "own client max", "ms", False),
            ),
            fairness_h1,
        ),
    ]


def tool_missing(scenario: Scenario) -> bool:
    return scenario.tool is not None and shutil.which(scenario.tool) is None

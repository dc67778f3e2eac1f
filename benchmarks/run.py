"""Run the benchmark: each server in turn, each scenario --repeat times, write RESULTS.md.

    python benchmarks/run.py --smoke          # tricorn only, current venv, ~10 s (CI)
    bash benchmarks/run.sh                    # the full run (installs the peers first)
    python benchmarks/run.py --servers hypercorn-trio,uvicorn-h11-asyncio \\
        --scenarios hello-h1-keepalive --duration 5 --repeat 2

Servers are started from the directory of this Python's executables, so run this with
the Python of the environment that has the servers (benchmarks/.venv-peers for a full
run). Each cell of RESULTS.md is the best of the repetitions: the highest rate, the
lowest latency or memory.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import git_revision, make_certs, package_version
from benchmarks.scenarios import (
    GROUPS,
    H2_LATENCY_MAX_RATE,
    Context,
    Metric,
    Scenario,
    catalogue,
    tool_missing,
)
from benchmarks.servers import (
    COMPARE,
    SERVERS,
    RunningServer,
    ServerSpec,
    TLSFiles,
    raise_nofile,
)

HERE = Path(__file__).resolve().parent
PACKAGES = [
    "tricorn",
    "hypercorn",
    "uvicorn",
    "granian",
    "daphne",
    "twisted",
    "trio",
    "anyio",
    "uvloop",
    "httptools",
    "h11",
    "h2",
    "wsproto",
    "websockets",
]


@dataclass
class Cell:
    """All samples of one metric for one server, and why it has none if so."""

    samples: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    na: str | None = None  # not applicable: the reason

    def best(self, metric: Metric) -> float | None:
        if not self.samples:
            return None
        return max(self.samples) if metric.higher_is_better else min(self.samples)


Results = dict[str, dict[str, Cell]]  # server -> metric key -> cell


class Harness:
    def __init__(self, args: argparse.Namespace, scenarios: list[Scenario]) -> None:
        self.args = args
        self.scenarios = scenarios
        self.bindir = Path(sys.executable).parent
        self.workdir = Path(tempfile.mkdtemp(prefix="tricorn-bench-"))
        two_cores = (os.cpu_count() or 1) >= 2
        self.server_cpu = 0 if two_cores else None
        self.ctx = Context(
            duration=args.duration,
            load_cpu=1 if two_cores else None,
            workdir=self.workdir,
            latency_rate=args.latency_rate,
            idle_counts=tuple(args.idle_counts),
            log=self.log,
        )
        self.results: Results = {}
        self.server_commands: dict[str, str] = {}
        self.details: list[dict[str, object]] = []
        self.failed_to_start: dict[str, str] = {}
        self.started = time.monotonic()
        self.tls: TLSFiles | None = None
        self.background: dict[str, float] = {}  # server -> % CPU busy before its runs
        self.latency_note = f"{args.latency_rate:g} req/s (fixed: --latency-rate, or --smoke)"

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:6.1f}s] {message}", flush=True)

    # --- servers --------------------------------------------------------------------
    def start(self, spec: ServerSpec, tls: bool) -> tuple[RunningServer | None, str | None]:
        exe = self.bindir / spec.command(self.bindir, 0)[0].rsplit("/", 1)[-1]
        if not exe.exists():
            return None, f"not installed ({exe} missing)"
        tls_files = self.tls_files() if tls else None
        suffix = "-tls" if tls else ""
        server = RunningServer(
            spec,
            self.bindir,
            self.workdir / f"{spec.name}{suffix}.log",
            tls=tls_files,
            cpu=self.server_cpu,
        )
        shown = shlex.join(server.argv).replace(str(server.port), "PORT")
        shown = shown.replace(str(self.bindir) + "/", "").replace(str(self.workdir), "$TMP")
        self.server_commands.setdefault(spec.name + suffix, shown)
        problem = server.wait_ready(self.args.start_timeout)
        if problem:
            server.stop()
            return None, f"failed to start: {problem}"
        return server, None

    def tls_files(self) -> TLSFiles:
        if self.tls is None:
            certs = make_certs(self.workdir)
            self.tls = TLSFiles(certs.cert, certs.key)
        return self.tls

    # --- running --------------------------------------------------------------------
    def cells(self, server: str, scenario: Scenario) -> list[Cell]:
        row = self.results.setdefault(server, {})
        return [row.setdefault(m.key, Cell()) for m in scenario.metrics]

    def mark(
        self, server: str, scenario: Scenario, *, na: str | None = None, err: str = ""
    ) -> None:
        for cell in self.cells(server, scenario):
            if na:
                cell.na = na
            if err:
                cell.errors.append(err)

    def run_one(
        self, spec: ServerSpec, scenario: Scenario, server: RunningServer, rep: int
    ) -> None:
        outcome = scenario.run(self.ctx, server)
        for metric, cell in zip(scenario.metrics, self.cells(spec.name, scenario), strict=True):
            if metric.key in outcome.values:
                cell.samples.append(outcome.values[metric.key])
        if outcome.error:
            self.mark(spec.name, scenario, err=outcome.error)
        shown = ", ".join(
            f"{m.title} {outcome.values[m.key]:,.2f} {m.unit}"
            for m in scenario.metrics
            if m.key in outcome.values
        )
        status = shown or "no result"
        if outcome.error:
            status += f"  [error: {outcome.error[:200]}]"
        self.log(f"  {scenario.name} #{rep + 1}: {status}")
        self.details.append(
            {
                "server": spec.name,
                "scenario": scenario.name,
                "repeat": rep + 1,
                "values": outcome.values,
                "error": outcome.error,
                "detail": outcome.detail,
            }
        )

    def run_server(self, spec: ServerSpec) -> None:
        runnable: list[Scenario] = []
        for scenario in self.scenarios:
            if scenario.feature not in spec.features:
                self.mark(spec.name, scenario, na=f"{spec.family} has no {scenario.feature}")
            elif tool_missing(scenario):
                self.mark(spec.name, scenario, na=f"{scenario.tool} not installed")
            else:
                runnable.append(scenario)
        plain = [s for s in runnable if not s.tls and not s.fresh_server]
        tls = [s for s in runnable if s.tls]
        fresh = [s for s in runnable if s.fresh_server]
        for group, use_tls in ((plain, False), (tls, True)):
            if group:
                self.run_group(spec, group, use_tls)
        for scenario in fresh:
            for rep in range(self.args.repeat):
                server, problem = self.start(spec, tls=False)
                if server is None:
                    self.log(f"  {scenario.name}: {problem}")
                    self.mark(spec.name, scenario, err=problem or "")
                    self.failed_to_start.setdefault(spec.name, problem or "")
                    break
                try:
                    self.run_one(spec, scenario, server, rep)
                finally:
                    server.stop()

    def run_group(self, spec: ServerSpec, group: list[Scenario], tls: bool) -> None:
        server, problem = self.start(spec, tls)
        if server is None:
            self.log(f"  {spec.name}{' (TLS)' if tls else ''}: {problem}")
            self.failed_to_start.setdefault(spec.name + ("-tls" if tls else ""), problem or "")
            for scenario in group:
                self.mark(spec.name, scenario, err=problem or "failed to start")
            return
        try:
            self.warm_up(server)
            for scenario in group:
                for rep in range(self.args.repeat):
                    if not server.alive():
                        self.log(f"  server died: {server.log_tail()}; restarting")
                        server.stop()
                        server, problem = self.start(spec, tls)
                        if server is None:
                            self.mark(spec.name, scenario, err=f"server died, then {problem}")
                            return
                    self.run_one(spec, scenario, server, rep)
        finally:
            if server is not None:
                server.stop()

    def warm_up(self, server: RunningServer) -> None:
        """A second of load so the first measured run doesn't pay for cold caches."""
        if server.tls is None and shutil.which("wrk"):
            argv = ["wrk", "-t1", "-c16", "-d1s", f"http://127.0.0.1:{server.port}/"]
            from benchmarks.scenarios import run_tool

            run_tool(self.ctx, argv, 20)

    def calibrate_latency_rate(self) -> None:
        """The paced latency runs go at half our own maximum: the HTTP/1.1 keep-alive
        requests/s of ``--latency-reference`` (tricorn-asyncio), measured here first, the
        same rate for every server (issue 13: p99 at half our maximum against the peers)."""
        from benchmarks.scenarios import hello_h1_keepalive

        name = self.args.latency_reference
        server, problem = self.start(SERVERS[name], tls=False)
        best = 0.0
        if server is not None:
            try:
                self.warm_up(server)
                for _ in range(self.args.repeat):
                    outcome = hello_h1_keepalive(self.ctx, server)
                    best = max(best, outcome.values.get("h1_keepalive", 0.0))
            finally:
                server.stop()
        if best <= 0:
            self.ctx.latency_rate = 500.0
            self.latency_note = f"500 req/s: {name} gave no maximum ({problem or 'wrk failed'})"
        else:
            self.ctx.latency_rate = max(100.0, round(best / 2, -2))
            self.latency_note = (
                f"{self.ctx.latency_rate:g} req/s for every server: half of {name}'s HTTP/1.1 "
                f"keep-alive maximum, {best:,.0f} req/s (best of {self.args.repeat} wrk runs "
                "at the start of this run)"
            )
        self.log(f"latency rate: {self.latency_note}")

    def run(self) -> None:
        names = self.args.servers
        paced = any(s.name in ("latency-h1", "latency-h2") for s in self.scenarios)
        if paced and self.args.latency_rate <= 0:
            self.calibrate_latency_rate()
        total = len(names)
        estimate = self.estimate()
        self.log(
            f"{total} server(s), {len(self.scenarios)} scenario(s), "
            f"{self.args.duration:g}s x {self.args.repeat}; about {estimate / 60:.0f} min; "
            f"logs in {self.workdir}"
        )
        for i, name in enumerate(names, 1):
            busy = other_cpu_percent()
            self.background[name] = busy
            note = f" (machine {busy:.0f} % busy before start: other load!)" if busy > 15 else ""
            self.log(f"[{i}/{total}] {name}{note}")
            self.run_server(SERVERS[name])

    def estimate(self) -> float:
        per_run = self.args.duration + 1.5
        seconds = 0.0
        for name in self.args.servers:
            spec = SERVERS[name]
            for s in self.scenarios:
                if s.feature in spec.features:
                    seconds += self.args.repeat * (15 if s.fresh_server else per_run)
            seconds += 6
        return seconds


def other_cpu_percent(seconds: float = 1.0) -> float:
    """How busy all cores were over `seconds` while this harness ran nothing (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    spent = total1 - total0
    return 100.0 * (spent - (idle1 - idle0)) / spent if spent else 0.0


# --- the report --------------------------------------------------------------------------


def fmt(value: float, unit: str) -> str:
    if unit in ("req/s", "msg/s"):
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:.2f}"
    if unit == "ratio":
        return f"{value:.3f}"
    return f"{value:,.1f}"


def cell_text(cell: Cell | None, metric: Metric) -> str:
    if cell is None:
        return "—"
    best = cell.best(metric)
    if best is not None:
        return fmt(best, metric.unit) + (" ⚠" if cell.errors else "")
    if cell.na:
        return "n/a"
    if cell.errors and any("failed to start" in e for e in cell.errors):
        return "failed to start"
    return "failed" if cell.errors else "—"


def ratio_text(results: Results, a: str, b: str, metric: Metric) -> str:
    ca, cb = results.get(a, {}).get(metric.key), results.get(b, {}).get(metric.key)
    va = ca.best(metric) if ca else None
    vb = cb.best(metric) if cb else None
    if va is None or vb is None or vb == 0:
        return "—"
    return f"{va / vb:.2f}x"


def versions() -> list[str]:
    out = []
    for name in PACKAGES:
        version = package_version(name)
        if version != "not installed":
            out.append(f"{name} {version}")
    return out


def tool_version(argv: list[str]) -> str:
    if not shutil.which(argv[0]):
        return f"{argv[0]}: not installed"
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return text[0] if text else argv[0]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def report(h: Harness, argv: list[str]) -> str:
    args = h.args
    results = h.results
    servers = [s for s in args.servers if s in results]
    lines = [
        "# Benchmark results",
        "",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} cores ({cpu_model()}), Linux {platform.release()}, "
        f"Python {platform.python_version()}",
        f"- tricorn revision: {git_revision()}",
        f"- Packages: {', '.join(versions())}",
        f"- Tools: {tool_version(['wrk', '-v'])}; {tool_version(['h2load', '--version'])}",
        f"- Pinning: server on core {h.server_cpu}, load tool on core {h.ctx.load_cpu} "
        "(`taskset -c`)"
        if h.server_cpu is not None
        else "- Pinning: none (one core)",
        f"- Each scenario ran {args.repeat} times for {args.duration:g} s per server; each cell is "
        "the **best** run (highest rate; lowest latency or memory). All runs are in the "
        "details below.",
        f"- Latency at a fixed rate: {h.latency_note}; h2c at most "
        f"{H2_LATENCY_MAX_RATE:g} req/s (the pace our Python h2 client keeps); "
        "saturation: wrk and our closed-loop "
        "client as fast as the server answers, 64 connections",
        f"- Command: `{' '.join(argv)}`",
        "",
        "Cells: a number; `n/a` where the server does not offer that protocol (or the tool "
        "is missing); `failed to start`; `failed` when no run succeeded (see Notes); "
        "`⚠` when some run had errors. Ratios are tricorn / peer, on the same run and "
        "metric (for ms and KiB lower is better, so a ratio below 1 is tricorn ahead).",
        "",
    ]
    all_metrics = [(s, m) for s in h.scenarios for m in s.metrics]
    for group in GROUPS:
        metrics = [m for s, m in all_metrics if s.group == group]
        if not metrics:
            continue
        lines += [f"## {group}", ""]
        lines.append("| server | " + " | ".join(m.title for m in metrics) + " |")
        lines.append("| --- | " + " | ".join("---:" for _ in metrics) + " |")
        for name in servers:
            row = results[name]
            cells = [cell_text(row.get(m.key), m) for m in metrics]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        ratio_rows = []
        for name in servers:
            if name not in COMPARE:
                continue
            for peer in COMPARE[name]:
                if peer not in results:
                    continue
                cells = [ratio_text(results, name, peer, m) for m in metrics]
                ratio_rows.append(f"| {name} / {peer} | " + " | ".join(cells) + " |")
        if ratio_rows:
            lines += ["", "| ratio | " + " | ".join(m.title for m in metrics) + " |"]
            lines.append("| --- | " + " | ".join("---:" for _ in metrics) + " |")
            lines += ratio_rows
        lines.append("")
    lines += websocket_client_note(h)
    lines += ["## Commands", "", "Servers (`PORT` is a free port picked per start):", ""]
    lines += [f"- {name}: `{cmd}`" for name, cmd in h.server_commands.items()]
    lines += ["", "Load (on the load core, each bounded by its duration and a hard timeout):", ""]
    lines += [f"- {key}: `{cmd}`" for key, cmd in h.ctx.commands.items()]
    lines += ["", "## Notes", ""]
    busy = {name: pct for name, pct in h.background.items() if pct > 15}
    if busy:
        lines.append(
            "- **The machine was not idle**: CPU busy (all cores) in the second before a "
            "server's runs, from other processes: "
            + ", ".join(f"{name} {pct:.0f} %" for name, pct in busy.items())
            + ". Those rows are lower than they would be on a quiet machine."
        )
    else:
        lines.append("- The machine was idle (< 15 % CPU) before each server's runs.")
    notes = []
    for name in servers:
        for key, cell in results[name].items():
            for err in sorted(set(cell.errors)):
                notes.append(f"- {name} / {key}: {err[:300]}")
    lines += notes or ["- no errors"]
    lines += ["", "<details><summary>All runs</summary>", ""]
    lines.append("| server | scenario | run | values | error |")
    lines.append("| --- | --- | ---: | --- | --- |")
    for d in h.details:
        values = d["values"]
        assert isinstance(values, dict)
        shown = ", ".join(f"{k}={v:,.2f}" for k, v in values.items())
        error = str(d["error"] or "")[:120].replace("|", "/")
        lines.append(f"| {d['server']} | {d['scenario']} | {d['repeat']} | {shown} | {error} |")
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def websocket_client_note(h: Harness) -> list[str]:
    rows = []
    busiest: tuple[float, float, str] = (0.0, 0.0, "")
    fastest: dict[str, float] = {}  # scenario -> highest rate of any server
    for d in h.details:
        detail = d["detail"]
        if str(d["scenario"]).startswith("ws-") and isinstance(detail, dict):
            cpu = detail.get("client_cpu_percent")
            rate = detail.get("rate")
            if isinstance(cpu, float | int) and isinstance(rate, float | int):
                scenario = str(d["scenario"])
                fastest[scenario] = max(fastest.get(scenario, 0.0), float(rate))
                if cpu > busiest[0]:
                    busiest = (float(cpu), float(rate), f"{d['server']} {scenario}")
                rows.append(f"| {d['server']} | {d['scenario']} | {d['repeat']} | {rate} | {cpu} |")
    if not rows:
        return []
    return [
        "### Is the WebSocket client the bottleneck?",
        "",
        "The client (`benchmarks/ws_client.py`, one process on the load core) measures its own "
        "CPU time. Below 100 % of its core it was waiting on the server, not the other way "
        f"round. Its busiest run ({busiest[2]}: {busiest[1]:,.0f} messages/s) used "
        f"{busiest[0]:.0f} % of its core, so it can drive about "
        f"{busiest[1] * 100 / max(busiest[0], 1):,.0f} messages/s of this size on one core; "
        f"the fastest server in that scenario reached "
        f"{fastest.get(busiest[2].rsplit(' ', 1)[-1], 0.0):,.0f} messages/s.",
        "",
        "| server | scenario | run | messages/s | client CPU % |",
        "| --- | --- | ---: | ---: | ---: |",
        *rows,
        "",
    ]


# --- command line ------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    names = [s.name for s in catalogue()]
    parser = argparse.ArgumentParser(
        description="tricorn benchmark harness", formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help="comma-separated, from: " + ", ".join(SERVERS),
    )
    parser.add_argument(
        "--scenarios", default=",".join(names), help="comma-separated, from: " + ", ".join(names)
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load run")
    parser.add_argument("--repeat", type=int, default=2, help="runs per scenario (best kept)")
    parser.add_argument("--output", type=Path, help="markdown file (default RESULTS.md)")
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=0.0,
        help="requests/s of the paced latency runs; 0 (default): half the HTTP/1.1 "
        "keep-alive maximum of --latency-reference, measured first",
    )
    parser.add_argument(
        "--latency-reference",
        default="tricorn-asyncio",
        help="the server whose maximum sets the latency rate (default tricorn-asyncio)",
    )
    parser.add_argument(
        "--idle-counts",
        default="1000,10000",
        help="idle connection counts, ascending (default 1000,10000)",
    )
    parser.add_argument("--start-timeout", type=float, default=30.0)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="CI check: tricorn-trio, hello + latency, 2 s x 1, exit 1 unless it answered",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.servers = (
            "tricorn-trio" if args.servers == parser.get_default("servers") else args.servers
        )
        if args.scenarios == parser.get_default("scenarios"):
            args.scenarios = "hello-h1-keepalive,latency-h1"
        args.duration = min(args.duration, 2.0)
        args.repeat = 1
        if args.latency_rate <= 0:
            args.latency_rate = 500.0  # no calibration run in the smoke check
        if args.output is None:
            args.output = Path(tempfile.gettempdir()) / "tricorn-bench-smoke.md"
    if args.output is None:
        args.output = HERE / "RESULTS.md"
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.idle_counts = sorted(int(n) for n in args.idle_counts.split(","))
    for s in [*args.servers, args.latency_reference]:
        if s not in SERVERS:
            parser.error(f"unknown server {s!r}")
    for s in args.scenarios:
        if s not in names:
            parser.error(f"unknown scenario {s!r}")
    if args.repeat < 1 or args.duration <= 0:
        parser.error("--repeat must be >= 1 and --duration > 0")
    return args


#: Everything after this line of RESULTS.md survives a new run of this script.
KEPT_MARKER = "<!-- measured by other scripts; kept by run.py -->"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    limit = raise_nofile()
    if max(args.idle_counts) + 200 > limit and "idle" in args.scenarios:
        print(f"open-file limit {limit} is too low for {max(args.idle_counts)} idle connections")
        return 2
    if (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})  # the harness and its clients stay off the server core
    wanted = set(args.scenarios)
    scenarios = [s for s in catalogue(tuple(args.idle_counts)) if s.name in wanted]
    harness = Harness(args, scenarios)
    try:
        harness.run()
    except KeyboardInterrupt:
        harness.log("interrupted: writing what ran so far")
    text = report(harness, ["python", "benchmarks/run.py", *argv])
    if args.output.exists():
        # Sections measured by other scripts (benchmarks/upload.py) are kept as they are.
        kept = args.output.read_text().partition(KEPT_MARKER)[2]
        if kept:
            text = text.rstrip("\n") + "\n\n" + KEPT_MARKER + kept
    args.output.write_text(text)
    (harness.workdir / "results.json").write_text(json.dumps(harness.details, indent=1))
    harness.log(f"wrote {args.output} (raw runs: {harness.workdir / 'results.json'})")
    if args.smoke:
        answered = any(cell.samples for row in harness.results.values() for cell in row.values())
        if harness.failed_to_start or not answered:
            for name, why in harness.failed_to_start.items():
                print(f"smoke: {name}: {why}", file=sys.stderr)
            print("smoke: FAILED: the server did not answer", file=sys.stderr)
            return 1
        print("smoke: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

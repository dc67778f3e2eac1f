"""Run the Autobahn WebSocket fuzzing client (``wstest``) against tricorn and judge the result.

    python tests/autobahn/run_autobahn.py --backend trio
    python tests/autobahn/run_autobahn.py --backend asyncio --cases 1.* 2.*
    python tests/autobahn/run_autobahn.py --backend trio --ci      # what CI runs
    python tests/autobahn/run_autobahn.py --backend trio --full    # all 517 cases

It starts ``python -m tricorn tests.autobahn.echo_app:app`` on 127.0.0.1 (a free port, read
back from the server's start-up line) as a subprocess, writes a spec derived from
``tests/autobahn/fuzzingclient.json`` (same cases and exclusions; the server URL, agent name
and report folder filled in), runs ``wstest -m fuzzingclient`` with a bounded timeout, reads
``reports/index.json`` and prints a summary: how many cases ended with each behavior (OK,
NON-STRICT, INFORMATIONAL, UNIMPLEMENTED, FAILED) and each close behavior, and which cases
were not OK. The exit status is 0 only if no case is FAILED, UNIMPLEMENTED or NON-STRICT
(outside the allow-list below, which is empty) and every selected case has a result. The
server runs with tricorn's default settings (keepalive pings off only).

What runs by default (the spec's ``cases``/``exclude-cases``): every group, 1 to 13, except the
big-payload throughput cases of the compression groups, 12.*.7-10 and 12.*.12-18 (and the same
in 13.*), 1000 messages of 16 to 128 KiB each; 12.* and 13.* still run with 16 B to 8 KiB
payloads and with 8 KiB fragmented into 256-byte frames, under every permessage-deflate offer.
The full suite (``--full``) takes about 15 minutes per backend, nearly all of it in those
excluded cases (wstest itself, on Python 2.7, is much of the cost); the default run takes
about 2 minutes, ``--ci`` (``CI_CASES``: groups 1-10 and a sample of 12 and 13) about one.
Group 9 (limits and performance: up to 16 MiB messages) is cheap and runs.
``--write-doc`` renders the ``--summary-json`` files of full runs as docs/autobahn.md
(``scripts/conformance.sh`` does all of it).

``wstest`` (Python 2.7) is installed by ``bash scripts/install-autobahn.sh``;
this script looks for it at ``.autobahn/bin/wstest`` in the repository unless ``--wstest`` says
otherwise. Reports land in ``.autobahn/reports/<backend>/`` (HTML per case, and index.json).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
SPEC = Path(__file__).with_name("fuzzingclient.json")
DEFAULT_WSTEST = ROOT / ".autobahn" / "bin" / "wstest"
DEFAULT_REPORTS = ROOT / ".autobahn" / "reports"

BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
#: A case ending with one of these fails the run (INFORMATIONAL is fine: wstest only reports
#: which close code was sent, e.g. for the close reasons of group 7).
BAD_BEHAVIORS = ("FAILED", "UNIMPLEMENTED", "NON-STRICT")

#: Case ids allowed a bad behavior, each with the reason. Keep it empty.
ALLOWED: dict[str, str] = {}

#: The command line of the server under test: the default settings (keepalive pings off only,
#: since wstest's cases do not expect unsolicited pings).
SERVER_ARGS = (
    "tests.autobahn.echo_app:app",
    "--bind",
    "127.0.0.1:0",
    "--no-access-log",
    "--ws-ping-interval",
    "0",
)

#: What CI runs (``--ci``): groups 1 to 10 whole, and of the compression groups 12 and 13 one
#: payload size per offer class (the 16 B to 8 KiB cases 12.*.1-6 and 13.*.1-6 run under
#: every offer otherwise; case 11 is the 8 KiB message in 256-byte frames).
CI_CASES = (
    *(f"{group}.*" for group in range(1, 11)),
    "12.1.*",
    "12.3.*",
    "13.1.*",
    "13.3.*",
    "13.5.*",
    "13.7.*",
)

_SERVING = re.compile(r"serving on http://127\.0\.0\.1:(\d+)")


@dataclass
class Summary:
    behaviors: collections.Counter[str] = field(default_factory=collections.Counter)
    close_behaviors: collections.Counter[str] = field(default_factory=collections.Counter)
    bad: dict[str, str] = field(default_factory=dict)
    allowed: dict[str, str] = field(default_factory=dict)
    total: int = 0

    @property
    def ok(self) -> bool:
        return self.total > 0 and not self.bad


def _case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split(".") if part.isdigit())


def summarize(index: dict[str, Any], agent: str) -> Summary:
    """Count behaviors in wstest's ``index.json`` for ``agent``."""
    summary = Summary()
    for case_id, result in sorted(
        index.get(agent, {}).items(), key=lambda item: _case_key(item[0])
    ):
        behavior = str(result.get("behavior"))
        close = str(result.get("behaviorClose"))
        summary.total += 1
        summary.behaviors[behavior] += 1
        summary.close_behaviors[close] += 1
        worst = behavior if behavior in BAD_BEHAVIORS else close if close in BAD_BEHAVIORS else ""
        if worst:
            if case_id in ALLOWED:
                summary.allowed[case_id] = f"{worst} (allowed: {ALLOWED[case_id]})"
            else:
                summary.bad[case_id] = f"behavior={behavior} close={close}"
    return summary


def format_summary(summary: Summary, backend: str, seconds: float) -> str:
    lines = [f"Autobahn fuzzingclient against tricorn ({backend}): {summary.total} cases"]
    lines.append(f"  {'result':<15}{'behavior':>10}{'close':>10}")
    names = list(BEHAVIORS) + sorted(
        (set(summary.behaviors) | set(summary.close_behaviors)) - set(BEHAVIORS)
    )
    for name in names:
        lines.append(
            f"  {name:<15}{summary.behaviors[name]:>10}{summary.close_behaviors[name]:>10}"
        )
    lines.append(f"  run time: {seconds:.1f} s")
    for case_id, why in summary.allowed.items():
        lines.append(f"  allowed {case_id}: {why}")
    if summary.bad:
        lines.append("  cases not OK:")
        lines.extend(f"    {case_id}: {why}" for case_id, why in summary.bad.items())
    return "\n".join(lines)


class Server:
    """tricorn serving the echo app in a subprocess; its log goes to ``log_path``."""

    def __init__(self, backend: str, log_path: Path) -> None:
        self.backend = backend
        self.log_path = log_path
        self.port = 0
        self._ready = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def start(self, timeout: float) -> None:
        command = [sys.executable, "-m", "tricorn", *SERVER_ARGS, "--backend", self.backend]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
        )
        assert self._process.stderr is not None
        self._reader = threading.Thread(
            target=self._read, args=(self._process.stderr,), daemon=True
        )
        self._reader.start()
        if not self._ready.wait(timeout) or not self.port:
            self.stop()
            raise RuntimeError(f"tricorn did not start within {timeout} s; see {self.log_path}")

    def _read(self, stream: IO[bytes]) -> None:
        with self.log_path.open("wb") as log:
            for line in stream:
                log.write(line)
                log.flush()
                if not self._ready.is_set():
                    match = _SERVING.search(line.decode(errors="replace"))
                    if match:
                        self.port = int(match.group(1))
                        self._ready.set()
        self._ready.set()  # the process ended: stop waiting either way

    def stop(self) -> int | None:
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._reader is not None:
            self._reader.join(5)
        return process.returncode


def build_spec(
    base: dict[str, Any], args: argparse.Namespace, port: int, outdir: Path
) -> dict[str, Any]:
    spec = dict(base)
    spec["outdir"] = str(outdir)
    spec["servers"] = [{"agent": args.agent, "url": f"ws://127.0.0.1:{port}"}]
    if args.ci:
        spec["cases"] = list(CI_CASES)
    if args.cases:
        spec["cases"] = list(args.cases)
    if args.full:
        spec["cases"] = ["*"]
        spec["exclude-cases"] = []
    if args.exclude is not None:
        spec["exclude-cases"] = list(args.exclude)
    return spec


def run(args: argparse.Namespace) -> int:
    wstest = Path(args.wstest)
    if not os.access(wstest, os.X_OK):
        print(
            f"run_autobahn: wstest not found at {wstest}; install it with\n"
            f"  bash scripts/install-autobahn.sh {DEFAULT_WSTEST.parent.parent}",
            file=sys.stderr,
        )
        return 2
    outdir = Path(args.reports).resolve() / args.backend  # wstest runs with it as cwd
    outdir.mkdir(parents=True, exist_ok=True)
    index_path = outdir / "index.json"
    index_path.unlink(missing_ok=True)
    base = json.loads(SPEC.read_text())
    server = Server(args.backend, outdir / "tricorn.log")
    started = time.monotonic()
    server.start(args.start_timeout)
    try:
        spec = build_spec(base, args, server.port, outdir)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec_file:
            json.dump(spec, spec_file)
        try:
            completed = subprocess.run(
                [str(wstest), "-m", "fuzzingclient", "-s", spec_file.name],
                cwd=outdir,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=args.timeout,
            )
        except subprocess.TimeoutExpired:
            print(f"run_autobahn: wstest did not finish within {args.timeout} s", file=sys.stderr)
            return 3
        finally:
            os.unlink(spec_file.name)
        (outdir / "wstest.log").write_bytes(completed.stdout)
    finally:
        server_status = server.stop()
    seconds = time.monotonic() - started
    if completed.returncode != 0 or not index_path.exists():
        tail = completed.stdout.decode(errors="replace")[-3000:]
        print(f"run_autobahn: wstest exited {completed.returncode}:\n{tail}", file=sys.stderr)
        return 3
    summary = summarize(json.loads(index_path.read_text()), args.agent)
    print(format_summary(summary, args.backend, seconds))
    if args.summary_json:
        record = {
            "backend": args.backend,
            "cases": summary.total,
            "behaviors": dict(summary.behaviors),
            "close_behaviors": dict(summary.close_behaviors),
            "bad": summary.bad,
            "seconds": round(seconds, 1),
        }
        Path(args.summary_json).write_text(json.dumps(record, indent=2) + "\n")
    print(f"  reports: {outdir}/index.html; server log: {server.log_path}")
    if server_status not in (0, None):
        print(f"run_autobahn: tricorn exited with status {server_status}", file=sys.stderr)
        return 1
    return 0 if summary.ok else 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("trio", "asyncio", "uvloop"), default="trio")
    parser.add_argument("--cases", nargs="*", help="case patterns (default: the spec's)")
    parser.add_argument("--ci", action="store_true", help="the CI selection (CI_CASES)")
    parser.add_argument("--full", action="store_true", help="all 517 cases, nothing excluded")
    parser.add_argument("--summary-json", help="also write the summary as JSON to this file")
    parser.add_argument(
        "--write-doc", help="do not run: write the markdown summary of --summaries here"
    )
    parser.add_argument("--summaries", nargs="*", default=[], help="--summary-json files")
    parser.add_argument("--revision", default="unknown", help="the revision, for --write-doc")
    parser.add_argument("--exclude", nargs="*", help="excluded patterns (default: the spec's)")
    parser.add_argument("--wstest", default=str(DEFAULT_WSTEST))
    parser.add_argument("--reports", default=str(DEFAULT_REPORTS))
    parser.add_argument("--agent", default="tricorn")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for wstest")
    parser.add_argument("--start-timeout", type=float, default=30.0)
    return parser.parse_args(argv)


def render_markdown(records: list[dict[str, Any]], revision: str, date: str) -> str:
    """docs/autobahn.md: the last full run's per-behavior counts per backend."""
    lines = [
        "# Autobahn WebSocket conformance",
        "",
        "The last full run of the Autobahn testsuite's fuzzingclient (`wstest -m fuzzingclient`,",
        "all cases, nothing excluded) against tricorn with its default settings (keepalive pings",
        "off), written by `bash scripts/conformance.sh`. CI runs a subset on both backends",
        "(`tests/integration/test_autobahn.py`: groups 1-10 and a sample of 12 and 13) and fails",
        "on any FAILED, UNIMPLEMENTED or NON-STRICT case.",
        "",
        f"- date: {date}",
        f"- revision: `{revision}`",
        "",
        "| backend | cases | " + " | ".join(BEHAVIORS) + " | run time |",
        "| --- | ---: | " + " | ".join("---:" for _ in BEHAVIORS) + " | ---: |",
    ]
    for record in records:
        counts = record["behaviors"]
        cells = " | ".join(str(counts.get(name, 0)) for name in BEHAVIORS)
        minutes = float(record["seconds"]) / 60
        lines.append(f"| {record['backend']} | {record['cases']} | {cells} | {minutes:.1f} min |")
    lines += [
        "",
        "Close behaviors (wstest's judgement of the closing handshake):",
        "",
        "| backend | " + " | ".join(BEHAVIORS) + " |",
        "| --- | " + " | ".join("---:" for _ in BEHAVIORS) + " |",
    ]
    for record in records:
        counts = record["close_behaviors"]
        cells = " | ".join(str(counts.get(name, 0)) for name in BEHAVIORS)
        lines.append(f"| {record['backend']} | {cells} |")
    bad = [
        (record["backend"], case, why) for record in records for case, why in record["bad"].items()
    ]
    lines.append("")
    if bad:
        lines.append("Cases that are not OK or INFORMATIONAL:")
        lines.append("")
        lines.extend(f"- {backend} {case}: {why}" for backend, case, why in bad)
    else:
        lines.append("No case is FAILED, UNIMPLEMENTED or NON-STRICT on any backend.")
    return "\n".join(lines) + "\n"


def write_doc(args: argparse.Namespace) -> int:
    records = [json.loads(Path(path).read_text()) for path in args.summaries]
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    Path(args.write_doc).write_text(render_markdown(records, args.revision, date))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write_doc:
        return write_doc(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

"""Per-message cost of a WebSocket echo server that a loaded machine cannot blur.

    benchmarks/.venv-peers/bin/python benchmarks/ws_profile.py callgrind tricorn-trio 65536
    benchmarks/.venv-peers/bin/python benchmarks/ws_profile.py strace uvicorn 64 --duration 4

Starts the server pinned to core 0 (tricorn from ``--root`` with ``--python``, or Uvicorn with
its default WebSocket implementation from the Python running this script), warms it up with
one second of ``ws_client.py`` (16 connections), then measures one run of it:

- ``callgrind``: the server runs under valgrind with instrumentation off until the measured
  run, which is then counted alone (``callgrind_control -i on``, a dump at its end): the
  instructions per echoed message, the same whatever else the machine does. ``memcpy`` is
  counted byte by byte there (``rep movsb``): each user-space copy of a 64 KiB payload shows
  as about 65,000 instructions. ``callgrind_annotate --tree=caller`` on the ``.cg.1`` file
  names who copies.
- ``strace``: ``strace -c -f`` attached for the measured run: system calls per message.

The 16 handshakes are inside the measured run; over thousands of messages they are noise.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if __package__ in (None, ""):
    sys.path.insert(0, str(HERE.parent))

from benchmarks.harness import free_port, wait_listening  # noqa: E402

SERVERS = ("tricorn-trio", "tricorn-asyncio", "uvicorn")


def server_command(server: str, port: int, python: str) -> list[str]:
    if server == "uvicorn":
        bindir = Path(sys.executable).parent
        return [
            str(bindir / "uvicorn"),
            *("benchmarks.apps:app", "--host", "127.0.0.1", "--port", str(port)),
            *("--http", "h11", "--loop", "asyncio", "--no-access-log", "--log-level", "warning"),
        ]
    backend = server.split("-", 1)[1]
    return [
        *(python, "-m", "tricorn", "benchmarks.apps:app", "--backend", backend),
        *("--bind", f"127.0.0.1:{port}", "--no-access-log", "--log-level", "warning"),
    ]


def run_client(port: int, size: int, duration: float) -> dict[str, object]:
    argv = ["taskset", "-c", "1", sys.executable, str(HERE / "ws_client.py")]
    argv += ["--port", str(port), "--size", str(size), "--connections", "16"]
    argv += ["--duration", f"{duration:g}", "--warmup", "0"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60).stdout
    result: dict[str, object] = json.loads(out.splitlines()[-1])
    return result


def callgrind_total(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("callgrind", "strace"))
    parser.add_argument("server", choices=SERVERS)
    parser.add_argument("size", type=int, help="message size in bytes")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--root", default=str(HERE.parent), help="tricorn checkout to run")
    parser.add_argument("--python", default=sys.executable, help="Python for tricorn")
    parser.add_argument("--out", default="/tmp/ws_profile", help="output file prefix")
    args = parser.parse_args()
    port = free_port()
    out = Path(f"{args.out}-{args.mode}-{args.server}-{args.size}")
    command = server_command(args.server, port, args.python)
    if args.mode == "callgrind":
        for old in out.parent.glob(f"{out.name}.cg*"):
            old.unlink()
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        command = [*valgrind, f"--callgrind-out-file={out}.cg", *command]
    cwd = args.root if args.server.startswith("tricorn") else str(HERE.parent)
    with open(f"{out}.stderr", "w") as stderr:
        server = subprocess.Popen(
            ["taskset", "-c", "0", *command], cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr
        )
    tracer: subprocess.Popen[bytes] | None = None
    try:
        wait_listening(port, process=server, timeout=120)
        run_client(port, args.size, 1.0)  # warm-up
        if args.mode == "callgrind":
            subprocess.run(["callgrind_control", "-i", "on", str(server.pid)], check=True)
        else:
            strace = ["strace", "-c", "-f", "-p", str(server.pid), "-o", f"{out}.strace"]
            tracer = subprocess.Popen(strace, stderr=subprocess.DEVNULL)
            time.sleep(1)  # attached to every thread before the run starts
        result = run_client(port, args.size, args.duration)
        if args.mode == "callgrind":
            subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True)
        elif tracer is not None:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(30)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    messages = int(str(result["messages"]))
    print(json.dumps(result))
    if args.mode == "callgrind":
        total = callgrind_total(Path(f"{out}.cg.1"))
        print(f"{total / messages:,.0f} instructions/message ({messages} messages; {out}.cg.1)")
    else:
        for line in Path(f"{out}.strace").read_text().splitlines()[2:]:
            fields = line.split()
            if len(fields) >= 5 and fields[3].isdigit() and fields[-1] != "total":
                errors = int(fields[4]) if len(fields) == 6 else 0
                calls, name = int(fields[3]), fields[-1]
                failed = errors / messages
                print(f"{name:16} {calls / messages:6.2f}/message  ({failed:.2f} failed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

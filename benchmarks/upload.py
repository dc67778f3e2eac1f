"""Upload throughput: one 20 MiB POST to a discarding app, HTTP/1.1 vs h2c vs TLS (h2 and 1.1).

Starts tricorn (``benchmarks.apps:app``, path ``/upload``) per backend and per window
configuration on 127.0.0.1, then runs curl uploads round-robin (h1, h2c, TLS h1, TLS h2),
``--repeat`` times each, and prints the median seconds per upload and the h2/h1 ratios as a
Markdown table. Timings are noisy on a shared machine: compare within one run.

    .venv/bin/python benchmarks/upload.py --repeat 7
    .venv/bin/python benchmarks/upload.py --windows 65535:1048576,16777216:16777216
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import make_certs, tricorn_process

ROOT = Path(__file__).resolve().parents[1]
SIZE = 20 << 20


@contextlib.contextmanager
def _tricorn(
    root: Path, backend: str, window: int, conn_window: int, tls: tuple[str, str] | None
) -> Iterator[int]:
    command = ["benchmarks.apps:app", "--backend", backend]
    if window:
        command += ["--h2-initial-window-size", str(window)]
        command += ["--h2-connection-window-size", str(conn_window)]
    if tls is not None:
        command += ["--certfile", tls[0], "--keyfile", tls[1]]
    with tricorn_process(command, root=root, quiet=True, stop_timeout=10) as (_, port):
        yield port


def _upload(url: str, body: Path, *flags: str) -> float:
    result = subprocess.run(
        ["curl", "-sS", "-k", *flags, "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
         "--data-binary", f"@{body}", url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    status, seconds = result.stdout.split()
    if status != "200":
        raise RuntimeError(f"{url}: {status} {result.stderr}")
    return float(seconds)


def _h2load(url: str, body: Path, h1: bool) -> float:
    """One upload with h2load (the same nghttp2 client for HTTP/1.1 and HTTP/2)."""
    command = ["h2load", "-n", "1", "-c", "1", "-d", str(body), url]
    if h1:
        command.insert(1, "--h1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if "1 succeeded" not in result.stdout:
        raise RuntimeError(f"{url}: {result.stdout} {result.stderr}")
    line = next(line for line in result.stdout.splitlines() if "time for request" in line)
    return h2load_seconds(line.split()[3])  # the minimum of one request: its time


#: h2load's time units (it switches from "ms" to "s" past a second).
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def h2load_seconds(value: str) -> float:
    """An h2load duration (``812us``, ``663.89ms``, ``1.23s``) in seconds. A duration over a
    second used to be read as microseconds (``1.23s`` -> 0.000 s in the "TLS h2" column)."""
    number = value.rstrip("usm")
    return float(number) * _UNITS[value[len(number) :]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backends", default="trio,asyncio")
    parser.add_argument("--client", choices=["h2load", "curl"], default="h2load")
    parser.add_argument(
        "--windows",
        default="0:0",
        help="stream:connection window pairs (0:0 = the checkout's defaults)",
    )
    parser.add_argument(
        "--roots",
        default=f"this={ROOT}",
        help="label=checkout pairs: compare tricorn versions in one run (e.g. an older tree)",
    )
    args = parser.parse_args()
    roots = [item.split("=", 1) for item in args.roots.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        body = Path(folder) / "body.bin"
        body.write_bytes(os.urandom(SIZE))
        certs = make_certs(Path(folder))
        tls = str(certs.cert), str(certs.key)
        print(f"client: {args.client}; median of {args.repeat} uploads of 20 MiB, seconds")
        print("| tricorn | backend | windows | h1 | h2c | h2c/h1 | TLS h1 | TLS h2 | TLS h2/h1 |")
        print("|---|---|---|---|---|---|---|---|---|")
        for backend in args.backends.split(","):
            for (label, root), pair in itertools.product(roots, args.windows.split(",")):
                window, conn_window = (int(value) for value in pair.split(":"))
                times: dict[str, list[float]] = {"h1": [], "h2c": [], "th1": [], "th2": []}
                with (
                    _tricorn(Path(root), backend, window, conn_window, None) as port,
                    _tricorn(Path(root), backend, window, conn_window, tls) as tls_port,
                ):
                    plain = f"http://127.0.0.1:{port}/upload"
                    secure = f"https://127.0.0.1:{tls_port}/upload"
                    for _ in range(args.repeat):
                        if args.client == "curl":
                            times["h1"].append(_upload(plain, body, "--http1.1"))
                            times["h2c"].append(_upload(plain, body, "--http2-prior-knowledge"))
                            times["th1"].append(_upload(secure, body, "--http1.1"))
                            times["th2"].append(_upload(secure, body, "--http2"))
                        else:
                            times["h1"].append(_h2load(plain, body, True))
                            times["h2c"].append(_h2load(plain, body, False))
                            times["th1"].append(_h2load(secure, body, True))
                            times["th2"].append(_h2load(secure, body, False))
                median = {name: statistics.median(values) for name, values in times.items()}
                windows = "defaults" if not window else f"{window} / {conn_window}"
                print(
                    f"| {label} | {backend} | {windows} | {median['h1']:.3f} s "
                    f"| {median['h2c']:.3f} s | {median['h2c'] / median['h1']:.2f} "
                    f"| {median['th1']:.3f} s | {median['th2']:.3f} s "
                    f"| {median['th2'] / median['th1']:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()

"""Command line: ``python -m h2spec --host H --port P [--tls] [-k SUBSTRING] [--verbose]``."""

from __future__ import annotations

import argparse
import sys

from h2spec.runner import CaseResult, run_suite, selected_cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m h2spec",
        description="HTTP/2 conformance suite (RFC 9113, RFC 7541) for any HTTP/2 server.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="server host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="server port (default 8000)")
    parser.add_argument(
        "--tls", action="store_true", help="use TLS with ALPN h2 (certificate not verified)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1.0,
        help="seconds to wait for each frame before giving up (default 1.0)",
    )
    parser.add_argument("--path", default="/", help="request path for GET/POST (default /)")
    parser.add_argument(
        "-k", "--filter", default=None, help="run only cases whose id or title contains this"
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="print the RFC text and details of each case"
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)

    if args.list:
        for case in selected_cases(args.filter):
            print(case.describe())
        return 0

    def report(result: CaseResult) -> None:
        print(result.line(verbose=args.verbose), flush=True)

    suite = run_suite(
        args.host,
        args.port,
        tls=args.tls,
        timeout=args.timeout,
        filter=args.filter,
        path=args.path,
        on_result=report,
    )
    if suite.skipped:
        print(f"({suite.skipped} skipped)")
    print(suite.summary())
    return 0 if suite.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Run the cases against a server and collect the results."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from h2spec.cases import load
from h2spec.connection import CaseFailed, Connection, Target
from h2spec.registry import CASES, Case, Skip

PASS = "PASS"
FAIL = "FAIL"
SKIP = "SKIP"


@dataclass(frozen=True)
class CaseResult:
    case: Case
    outcome: str  # PASS, FAIL or SKIP
    detail: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.outcome == PASS

    def line(self, *, verbose: bool = False) -> str:
        text = f"{self.outcome} {self.case.describe()}"
        if self.outcome == FAIL:
            text += f"\n     -> {self.detail}"
        elif self.outcome == SKIP:
            text += f" ({self.detail})"
        if verbose:
            text += f"\n     RFC: {self.case.requirement}"
            if self.outcome == PASS and self.detail:
                text += f"\n     -> {self.detail}"
            text += f"\n     time: {self.seconds:.3f}s"
        return text


@dataclass
class SuiteResult:
    results: list[CaseResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.outcome == PASS)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if r.outcome == FAIL)

    @property
    def skipped(self) -> int:
        return sum(1 for r in self.results if r.outcome == SKIP)

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if r.outcome == FAIL]

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed"


def selected_cases(filter: str | None = None) -> list[Case]:
    load()
    if not filter:
        return list(CASES)
    needle = filter.lower()
    return [c for c in CASES if needle in f"{c.id} {c.title}".lower()]


def run_case(case: Case, target: Target) -> CaseResult:
    started = time.monotonic()
    conn: Connection | None = None
    try:
        conn = Connection(target)
        if case.handshake:
            conn.handshake(case.settings)
        detail = case.run(conn) or ""
        outcome = PASS
    except Skip as exc:
        outcome, detail = SKIP, str(exc)
    except CaseFailed as exc:
        outcome, detail = FAIL, str(exc)
    except OSError as exc:
        outcome, detail = FAIL, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a bug in a case must not stop the suite
        outcome, detail = FAIL, f"h2spec internal error: {type(exc).__name__}: {exc}"
    finally:
        if conn is not None:
            conn.close()
    return CaseResult(case, outcome, detail, time.monotonic() - started)


def run_suite(
    host: str,
    port: int,
    *,
    tls: bool = False,
    timeout: float = 1.0,
    filter: str | None = None,
    path: str = "/",
    on_result: Callable[[CaseResult], None] | None = None,
) -> SuiteResult:
    """Run every case (or those whose id or title contains ``filter``) against host:port.

    Each case opens its own connection (h2c with prior knowledge, or TLS with ALPN h2 when
    ``tls`` is true; certificates are not verified). ``timeout`` bounds every read. Returns the
    per-case results; ``on_result`` is called after each case (the CLI prints from it).
    """
    target = Target(host, port, tls=tls, timeout=timeout, path=path)
    suite = SuiteResult()
    for case in selected_cases(filter):
        result = run_case(case, target)
        suite.results.append(result)
        if on_result is not None:
            on_result(result)
    return suite

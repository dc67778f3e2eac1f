"""h2spec: tricorn's own HTTP/2 conformance suite (RFC 9113 and RFC 7541).

Run it as ``python -m h2spec --host 127.0.0.1 --port 8000`` or call :func:`run_suite`.
"""

from h2spec.runner import CaseResult, SuiteResult, run_suite

__all__ = ["CaseResult", "SuiteResult", "run_suite"]

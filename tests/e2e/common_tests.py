"""The tests every framework suite (test_frameworks.py, test_flask.py, test_django.py) runs
alike against its app: each suite subclasses ``CommonTests`` as ``TestCommon``, and the
tests take that module's ``served`` fixture (one app on one backend)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import checks
from tests.e2e.served import Served

HTTP = pytest.mark.parametrize("http", ["1.1", "2"])


class CommonTests:
    """Start-up log, the 20 MiB uploads, and an endless event stream the client leaves
    (for WSGI apps: tricorn calls the iterable's ``close()``)."""

    def test_start_up_log_names_the_backend(self, served: Served) -> None:
        checks.check_start_up_log(served)

    def test_upload_20_mib_multipart_httpx_http1(self, served: Served) -> None:
        checks.check_upload_httpx(served.server().url)

    @HTTP
    def test_upload_20_mib_multipart_curl(
        self, served: Served, upload_file: Path, http: str
    ) -> None:
        checks.check_upload_curl(served.server().url, upload_file, http)

    @HTTP
    def test_endless_sse_stops_when_the_client_goes(self, served: Served, http: str) -> None:
        checks.check_endless_sse_stops(served.server().url, http)

"""Every async test runs on both backends: trio and asyncio.

``TRICORN_TEST_BACKENDS=trio,asyncio,uvloop`` (any of the three) picks the backends instead:
``uvloop`` is asyncio on uvloop's loop (test id ``uvloop``).
"""

from __future__ import annotations

import os

import pytest

_BACKENDS = {
    "trio": "trio",
    "asyncio": "asyncio",
    "uvloop": pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
}
_CHOSEN = [
    _BACKENDS[name.strip()]
    for name in os.environ.get("TRICORN_TEST_BACKENDS", "trio,asyncio").split(",")
    if name.strip()
]


@pytest.fixture(params=_CHOSEN)
def anyio_backend(request: pytest.FixtureRequest) -> object:
    return request.param

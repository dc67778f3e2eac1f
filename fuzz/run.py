"""Run one fuzz target under atheris (libFuzzer): ``python -m fuzz.run TARGET [libFuzzer args]``.

The target's protocol modules, and the libraries under them (h11; h2, hpack, hyperframe;
wsproto), are imported inside ``atheris.instrument_imports()`` so that libFuzzer sees their
coverage; tricorn.server and the rest are left uninstrumented (startup time). An oracle's
AssertionError, or any exception, is a crash: libFuzzer writes the input to its
``-artifact_prefix`` and stops. Replay one with ``python -m fuzz.run TARGET FILE``.
"""

from __future__ import annotations

import importlib
import shlex
import sys
from pathlib import Path

import atheris

_HTTP1 = [
    "tricorn.protocols.http11",
    "tricorn.protocols.http11_h11",
    "tricorn.protocols.http11_httptools",
]
#: What each target imports instrumented, and the module prefixes instrumented.
MODULES = {
    "http11": (_HTTP1, ["tricorn.protocols"]),
    "http11_h11": (_HTTP1, ["tricorn.protocols", "h11"]),
    "http1_diff": (_HTTP1, ["tricorn.protocols", "h11"]),
    "http2": (["tricorn.protocols.http2"], ["tricorn.protocols", "h2", "hpack", "hyperframe"]),
    "hpack": (["tricorn.protocols.http2"], ["tricorn.protocols", "h2", "hpack", "hyperframe"]),
    "websocket": (["tricorn.protocols.websocket"], ["tricorn.protocols", "wsproto"]),
    "proxy": (["tricorn.protocols.proxy_protocol"], ["tricorn.protocols"]),
    # aioquic's H3 layer (frames, QPACK's glue) is instrumented; its QUIC and TLS are not.
    "http3": (["tricorn.protocols.http3"], ["tricorn.protocols", "aioquic.h3"]),
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in MODULES:
        sys.exit(f"usage: python -m fuzz.run {{{','.join(MODULES)}}} [libFuzzer args]")
    name = sys.argv[1]
    modules, include = MODULES[name]
    with atheris.instrument_imports(include=include):
        for module in modules:
            importlib.import_module(module)
    from fuzz.targets import TARGETS  # after the instrumented imports

    target = TARGETS[name]

    def one_input(data: bytes) -> None:
        target(data)

    atheris.Setup([_relauncher(name), *sys.argv[2:]], one_input)
    atheris.Fuzz()


def _relauncher(name: str) -> str:
    """An executable that starts this target again: libFuzzer's ``-merge``/``-fork`` modes
    re-execute ``argv[0]`` (which, for ``python -m fuzz.run``, is not executable)."""
    folder = Path(".fuzz")
    folder.mkdir(exist_ok=True)
    path = folder / f"run-{name}"
    script = f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m fuzz.run {name} "$@"\n'
    if not path.exists() or path.read_text() != script:
        path.write_text(script)
        path.chmod(0o755)
    return str(path)


if __name__ == "__main__":
    main()

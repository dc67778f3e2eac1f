"""Run one fuzz target under atheris (libFuzzer): ``python -m fuzz.run TARGET [libFuzzer args]``.

The target's protocol modules, and the libraries under them (h11; h2, hpack, hyperframe;
wsproto), are imported inside ``atheris.instrument_imports()`` so that libFuzzer sees their
coverage; tricorn.server and the rest are left uninstrumented (startup time). An oracle's
AssertionError, or any exception, is a crash: libFuzzer writes the input to its
``-artifact_prefix`` and stops. Replay one with ``python -m fuzz.run TARGET FILE``.
"""

from __future__ import annotations

import importlib
import sys

import atheris

_HTTP1 = ["tricorn.protocols.http11", "tricorn.protocols.http11_h11"]
#: What each target imports instrumented, and the module prefixes instrumented.
MODULES = {
    "http11": (_HTTP1, ["tricorn.protocols"]),
    "http11_h11": (_HTTP1, ["tricorn.protocols", "h11"]),
    "http1_diff": (_HTTP1, ["tricorn.protocols", "h11"]),
    "http2": (["tricorn.protocols.http2"], ["tricorn.protocols", "h2", "hpack", "hyperframe"]),
    "hpack": (["tricorn.protocols.http2"], ["tricorn.protocols", "h2", "hpack", "hyperframe"]),
    "websocket": (["tricorn.protocols.websocket"], ["tricorn.protocols", "wsproto"]),
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

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

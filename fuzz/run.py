"""Run one fuzz target under atheris (libFuzzer): ``python -m fuzz.run TARGET [libFuzzer args]``.

The protocol modules (and the libraries under them: h11, h2, hpack, hyperframe, wsproto) are
imported inside ``atheris.instrument_imports()`` so that libFuzzer sees their coverage. An
oracle's AssertionError, or any exception, is a crash: libFuzzer writes the input to its
``-artifact_prefix`` and stops. Replay one with ``python -m fuzz.run TARGET FILE``.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["tricorn", "h11", "h2", "hpack", "hyperframe", "wsproto"]):
    import tricorn.protocols.http2
    import tricorn.protocols.http11
    import tricorn.protocols.http11_h11
    import tricorn.protocols.websocket  # noqa: F401

from fuzz.targets import TARGETS


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python -m fuzz.run {{{','.join(TARGETS)}}} [libFuzzer args]")
    target = TARGETS[sys.argv[1]]

    def one_input(data: bytes) -> None:
        target(data)

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

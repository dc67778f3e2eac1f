"""WSGI apps for the tests: each wrapped in ``wsgiref.validate.validator`` unless it must break
PEP 3333 on purpose. Apps record what they saw in a ``Record``; the tests assert.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment
from wsgiref.validate import validator

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """The resident set size of this process, now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


@dataclass
class Record:
    """What an app saw, for the test to check; events let the test wait without sleeping."""

    chunks_produced: int = 0
    closed: threading.Event = field(default_factory=threading.Event)
    active: int = 0
    max_active: int = 0
    gate: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rss_start: int = 0
    rss_max: int = 0
    errors: list[str] = field(default_factory=list)


def _plain(start_response: StartResponse, body: bytes, status: str = "200 OK") -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _hello(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    return _plain(start_response, b"Hello, world!")


hello: WSGIApplication = validator(_hello)


def _environ_dump(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    values: dict[str, Any] = {
        key: value for key, value in environ.items() if isinstance(value, str)
    }
    values["wsgi.version"] = list(environ["wsgi.version"])
    for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        values[key] = environ[key]
    values["wsgi.input_terminated"] = environ.get("wsgi.input_terminated")
    return _plain(start_response, json.dumps(values).encode())


environ_dump: WSGIApplication = validator(_environ_dump)


def _read_body(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """Reads the body the way ``?how=`` says and answers its length and CRC-32."""
    how = parse_qs(environ["QUERY_STRING"]).get("how", ["read"])[0]
    stream = environ["wsgi.input"]
    parts: list[bytes] = []
    if how == "read":
        parts.append(stream.read())
    elif how == "read_n":
        while chunk := stream.read(1000):
            parts.append(chunk)
    elif how == "readline":
        while line := stream.readline():
            parts.append(line)
    elif how == "readline_n":
        while line := stream.readline(7):
            parts.append(line)
    elif how == "readlines":
        parts.extend(stream.readlines())
    elif how == "iterate":
        parts.extend(stream)
    body = b"".join(parts)
    lines = [len(part) for part in parts]
    answer = {"length": len(body), "crc": zlib.crc32(body), "parts": lines[:50]}
    return _plain(start_response, json.dumps(answer).encode())


read_body: WSGIApplication = _read_body  # validator's input wrapper takes read(n) only


def big_upload(record: Record) -> WSGIApplication:
    """Reads the body in 64 KiB chunks, sampling this process's RSS as it goes."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        record.rss_start = record.rss_max = rss_bytes()
        length = 0
        crc = 0
        while chunk := stream.read(65536):
            length += len(chunk)
            crc = zlib.crc32(chunk, crc)
            record.chunks_produced += 1
            if record.chunks_produced % 64 == 0:
                record.rss_max = max(record.rss_max, rss_bytes())
        return _plain(start_response, json.dumps({"length": length, "crc": crc}).encode())

    return validator(app)


def streaming(
    record: Record, chunk_size: int, count: int, wait_after_first: bool = False
) -> WSGIApplication:
    """Yields ``count`` chunks of ``chunk_size`` bytes (``count`` 0: until closed).

    With ``wait_after_first`` it waits for ``record.gate`` before the second chunk.
    """

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            index = 0
            while count == 0 or index < count:
                if index == 1 and wait_after_first:
                    record.gate.wait(10)
                record.chunks_produced += 1
                yield b"%09d\n" % index + b"x" * (chunk_size - 10)
                index += 1

        def close(self) -> None:
            record.closed.set()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Body:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Body()

    return validator(app)


def _too_long(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    yield b"01234"
    yield b"56789"


too_long: WSGIApplication = _too_long


def _generated(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Kind", "generator")])
    yield b""  # an empty chunk does not send the head yet
    yield b"one,"
    yield b"two"


generated: WSGIApplication = validator(_generated)


def _uses_write(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written,")
    write(b"twice,")
    return [b"then returned"]


uses_write: WSGIApplication = validator(_uses_write)


def bad_response(status: Any, headers: Any) -> WSGIApplication:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        start_response(status, headers)
        return [b"never sent"]

    return app


def raises(after_head: bool) -> WSGIApplication:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        if after_head:
            yield b"partial"
        raise RuntimeError("the app broke")

    return app


def _replaces_headers(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """PEP 3333's error pattern: headers replaced with exc_info before any body was sent."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "yes")])
    try:
        raise ValueError("view failed")
    except ValueError:
        start_response(
            "503 Service Unavailable",
            [("Content-Type", "text/plain"), ("Content-Length", "5")],
            sys.exc_info(),
        )
        return [b"sorry"]


replaces_headers: WSGIApplication = validator(_replaces_headers)


def exc_info_after_head(record: Record) -> WSGIApplication:
    """Calls start_response with exc_info after the head went out: it must re-raise."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        try:
            raise KeyError("late failure")
        except KeyError:
            try:
                start_response("500 Oops", [], sys.exc_info())
            except KeyError as error:
                record.errors.append(f"re-raised {error!r}")
                raise

    return app


def start_response_twice(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [])
    start_response("201 Created", [])
    return [b""]


def blocking(record: Record) -> WSGIApplication:
    """Holds its thread until ``record.gate`` opens; counts how many run at once."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        with record.lock:
            record.active += 1
            record.max_active = max(record.max_active, record.active)
        try:
            record.gate.wait(10)
        finally:
            with record.lock:
                record.active -= 1
        return _plain(start_response, b"done")

    return validator(app)


def _file(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
    path = parse_qs(environ["QUERY_STRING"])["path"][0]
    size = os.path.getsize(path)
    start_response(
        "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))]
    )
    return environ["wsgi.file_wrapper"](open(path, "rb"), 8192)


file_app: WSGIApplication = validator(_file)


def _too_short(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [b"abc"]


too_short: WSGIApplication = validator(_too_short)


def _stuck(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """Says so on stderr, then holds its thread for 30 s (a hung database call, say)."""
    print("stuck app entered", file=sys.stderr, flush=True)
    threading.Event().wait(30)
    return _plain(start_response, b"too late")


stuck: WSGIApplication = _stuck

"""HTTP/2 attacks on a real tricorn process: the answer on the wire, bounded memory, others served.

Each test starts ``python -m tricorn tests.integration.attack_apps:app`` on 127.0.0.1 (trio
and asyncio backends), measures the server's resident memory from ``/proc/PID/status``, sends
one attack with a raw-frame client (the h2spec client core), and checks three things:

1. the answer on the wire: GOAWAY(ENHANCE_YOUR_CALM), RST_STREAM(REFUSED_STREAM), 431, or
   (for flow-control attacks) nothing more than the windows allow;
2. memory: the server's peak RSS during the attack (``VmHWM``, reset through ``clear_refs``
   just before it) minus its RSS before stays under ``RSS_BOUND_KIB`` (32 MiB);
3. another client is served meanwhile: HTTP/1.1 and HTTP/2 requests on fresh connections get
   200 (``BYSTANDER_TIMEOUT`` only bounds a hang; the time is reported, not asserted).

Every attack is bounded in frames and in time and stops by itself; the tests kill only the
server process they started. ``pytest -s`` prints one summary line per test.

A client that never reads costs about one slice of response bytes per connection (7a), and
an unread flood stops the reader on both backends (7b).
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from h2spec import frames as f
from h2spec import hpackraw
from h2spec.connection import Connection, ConnectionClosed, Target
from h2spec.frames import Frame
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.integration.attack_apps:app"
BACKENDS = ["trio", "asyncio"]

#: Largest growth of the server's resident memory an attack may cause.
RSS_BOUND_KIB = 32 * 1024
#: Hang guard of a bystander's request (reported, not asserted: the machine may be busy).
BYSTANDER_TIMEOUT = 10.0
#: How long an attack may take to get its answer.
ANSWER_TIMEOUT = 5.0
#: How long the zero-window readers (test 6) keep the server busy.
HOLD_SECONDS = 3.0
#: How long the client that never reads (test 7a) keeps its streams open.
UNREAD_HOLD_SECONDS = 2.0

MAX_STREAMS = 100  # tricorn's default h2_max_concurrent_streams
MAX_HEADER_LIST = 65536  # default h2_max_header_list_size
MAX_RESETS = 200  # default h2_max_resets_per_window

pytestmark = pytest.mark.parametrize("backend", BACKENDS)


# --- the server process ---------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    backend: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM of the server, in KiB."""
        values: dict[str, int] = {}
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    values[name] = int(rest.split()[0])
        return values

    def rss(self) -> int:
        return self.memory()["VmRSS"]

    def reset_peak(self) -> None:
        """Start a new VmHWM measurement (Linux ``clear_refs`` 5); a no-op where refused."""
        with contextlib.suppress(OSError), open(f"/proc/{self.pid}/clear_refs", "w") as clear:
            clear.write("5")

    def log_tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def target(self, timeout: float = 2.0) -> Target:
        return Target("127.0.0.1", self.port, timeout=timeout)

    def alive(self) -> bool:
        return self.process.poll() is None


def _wait_for_port(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            pass
        # Wait a moment for the process rather than spin; it must not exit meanwhile.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.02)
        if process.poll() is not None:
            raise AssertionError(f"tricorn exited early: {log.read_text(errors='replace')}")
    raise AssertionError("tricorn did not start listening within 15 s")


@contextlib.contextmanager
def tricorn(backend: str, tmp_path: Path, *flags: str) -> Iterator[Server]:
    port = free_port()
    log = tmp_path / f"tricorn-{backend}-{port}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tricorn",
                APP,
                "--bind",
                f"127.0.0.1:{port}",
                "--no-access-log",
                "--backend",
                backend,
                *flags,
            ],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(process, port, log)
        yield Server(process, port, log, backend)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


# --- other clients --------------------------------------------------------------------------


def bystander(server: Server) -> str:
    """One HTTP/1.1 and one HTTP/2 GET on fresh connections; both must be answered 200."""
    start = time.monotonic()
    response = httpx.get(f"http://127.0.0.1:{server.port}/", timeout=BYSTANDER_TIMEOUT)
    h1 = time.monotonic() - start
    assert response.status_code == 200, f"HTTP/1.1 bystander got {response.status_code}"
    start = time.monotonic()
    conn = Connection(server.target(BYSTANDER_TIMEOUT))
    try:
        conn.handshake()
        status = conn.roundtrip().status
    finally:
        conn.close()
    h2 = time.monotonic() - start
    assert status == 200, f"HTTP/2 bystander got {status}"
    return f"bystanders h1 200 in {h1 * 1000:.0f} ms, h2 200 in {h2 * 1000:.0f} ms"


def counts(server: Server) -> dict[str, int]:
    """The app's counters: live /hang and /stream instances, their peak, how many started."""
    response = httpx.get(f"http://127.0.0.1:{server.port}/count", timeout=BYSTANDER_TIMEOUT)
    assert response.status_code == 200
    document: dict[str, int] = json.loads(response.content)
    return document


def wait_for_live(server: Server, live: int, timeout: float = 3.0) -> dict[str, int]:
    """Poll /count until ``live`` instances remain (or the timeout); return the last counts."""
    deadline = time.monotonic() + timeout
    seen = counts(server)
    while seen["live"] != live and time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.process.wait(timeout=0.05)
        seen = counts(server)
    return seen


# --- memory ---------------------------------------------------------------------------------


@dataclass
class Memory:
    """The server's memory around an attack, in KiB."""

    before: int
    after: int = 0
    peak: int = 0

    @property
    def growth(self) -> int:
        return max(self.after, self.peak) - self.before

    def __str__(self) -> str:
        return (
            f"RSS before {self.before} KiB, after {self.after} KiB, peak {self.peak} KiB "
            f"(growth {self.growth} KiB, bound {RSS_BOUND_KIB} KiB)"
        )


def start_measuring(server: Server) -> Memory:
    server.reset_peak()
    return Memory(before=server.rss())


def stop_measuring(server: Server, memory: Memory) -> Memory:
    values = server.memory()
    memory.after = values["VmRSS"]
    memory.peak = values["VmHWM"]
    return memory


def check_memory(server: Server, memory: Memory, what: str) -> None:
    assert memory.growth < RSS_BOUND_KIB, f"{what}: {memory}\n{server.log_tail()}"


# --- the attacker ---------------------------------------------------------------------------


@dataclass
class Answer:
    """What the server sent back during an attack."""

    goaway: Frame | None = None
    resets: dict[int, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    data_bytes: int = 0
    #: SETTINGS and PING ACKs: one per such frame the server processed.
    acks: int = 0
    closed: bool = False
    units_sent: int = 0
    seconds: float = 0.0
    #: time.monotonic() of the last GOAWAY, RST_STREAM or response head received.
    answered_at: float = 0.0

    def note(self, frame: Frame) -> None:
        if frame.type in (f.GOAWAY, f.RST_STREAM, f.HEADERS):
            self.answered_at = time.monotonic()
        if frame.type == f.GOAWAY:
            self.goaway = frame
        elif frame.type == f.RST_STREAM:
            self.resets[frame.stream_id] = frame.error_code
        elif frame.type == f.HEADERS:
            status = dict(frame.headers).get(":status")
            if status is not None and frame.stream_id not in self.statuses:
                self.statuses[frame.stream_id] = int(status)
        elif frame.type == f.DATA:
            self.data_bytes += len(frame.payload)
        elif frame.type in (f.SETTINGS, f.PING) and frame.ack:
            self.acks += 1

    @property
    def over(self) -> bool:
        return self.closed or self.goaway is not None

    def describe(self) -> str:
        parts = []
        if self.goaway is not None:
            parts.append(self.goaway.describe())
        if self.resets:
            codes = sorted({f.error_name(code) for code in self.resets.values()})
            parts.append(f"{len(self.resets)} RST_STREAM ({', '.join(codes)})")
        if self.statuses:
            parts.append(f"{len(self.statuses)} responses {sorted(set(self.statuses.values()))}")
        if self.data_bytes:
            parts.append(f"{self.data_bytes} DATA bytes")
        if self.closed:
            parts.append("connection closed")
        return "; ".join(parts) or "nothing"


def connect(server: Server, settings: Iterable[tuple[int, int]] = ()) -> Connection:
    conn = Connection(server.target())
    conn.handshake(list(settings))
    return conn


def drain(conn: Connection, answer: Answer, timeout: float) -> None:
    """Read and note what the server sent, for up to ``timeout`` s (0.001: what is there)."""
    deadline = time.monotonic() + timeout
    while not answer.closed:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            answer.note(conn.recv(min(remaining, 0.25)))
        except TimeoutError:
            continue
        except ConnectionClosed:
            answer.closed = True


def blast(
    conn: Connection,
    batches: Iterable[tuple[bytes, int]],
    *,
    until: float = ANSWER_TIMEOUT,
) -> Answer:
    """Send ``(bytes, units)`` batches, reading answers between them, until the server ends the
    connection or every batch is sent; then wait up to ``until`` s for GOAWAY or the close."""
    answer = Answer()
    start = time.monotonic()
    deadline = start + until
    for data, units in batches:
        if answer.over or time.monotonic() > deadline:
            break
        conn.sock.settimeout(1.0)
        try:
            conn.sock.sendall(data)
        except OSError:  # reset, broken pipe, or the server stopped reading for 1 s
            break
        answer.units_sent += units
        drain(conn, answer, 0.001)
    while not answer.over and time.monotonic() < deadline:
        drain(conn, answer, deadline - time.monotonic())
    answer.seconds = (answer.answered_at or time.monotonic()) - start
    return answer


def batched(frame: bytes, count: int, per_batch: int = 500) -> Iterator[tuple[bytes, int]]:
    """``count`` copies of ``frame`` in batches of ``per_batch``."""
    sent = 0
    while sent < count:
        size = min(per_batch, count - sent)
        yield frame * size, size
        sent += size


def goaway_text(answer: Answer) -> str:
    if answer.goaway is None:
        return ""
    return answer.goaway.payload[8:].decode("utf-8", "replace")


def report(name: str, server: Server, *parts: str) -> None:
    print(f"\n[attack] {name} [{server.backend}]: " + " | ".join(parts))


def request_headers(conn: Connection, path: str, method: str = "GET") -> list[tuple[str, str]]:
    return conn.request_headers(method=method, path=path)


def header_frames(stream_id: int, block: bytes, *, end_stream: bool) -> bytes:
    """HEADERS (+ CONTINUATION) frames carrying ``block`` in 16 KiB pieces."""
    size = f.DEFAULT_MAX_FRAME_SIZE
    pieces = [block[i : i + size] for i in range(0, len(block), size)] or [b""]
    out = bytearray()
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        flags = f.END_HEADERS if last else 0
        if index == 0:
            flags |= f.END_STREAM if end_stream else 0
        out += f.frame(f.HEADERS if index == 0 else f.CONTINUATION, flags, stream_id, piece)
    return bytes(out)


# --- 1. concurrent streams ------------------------------------------------------------------


def test_streams_beyond_the_concurrency_limit_are_refused(backend: str, tmp_path: Path) -> None:
    total = MAX_STREAMS + 20
    with tricorn(backend, tmp_path) as server:
        memory = start_measuring(server)
        conn = connect(server)
        ids = [conn.new_stream_id() for _ in range(total)]
        headers = request_headers(conn, "/hang")
        conn.send(
            b"".join(header_frames(sid, conn.encode(headers), end_stream=True) for sid in ids)
        )
        answer = Answer()
        start = time.monotonic()
        deadline = start + ANSWER_TIMEOUT
        while len(answer.resets) < total - MAX_STREAMS and not answer.over:
            assert time.monotonic() < deadline, f"no REFUSED_STREAMs in time: {answer.describe()}"
            drain(conn, answer, 0.25)
        answer.seconds = answer.answered_at - start
        live = counts(server)
        others = bystander(server)
        stop_measuring(server, memory)
        conn.close()
        after_close = wait_for_live(server, 0)
        refused = sorted(sid for sid, code in answer.resets.items() if code == f.REFUSED_STREAM)
        report(
            "1 concurrent streams",
            server,
            f"{total} streams of /hang -> {answer.describe()} in {answer.seconds:.2f} s",
            f"refused {refused[0]}..{refused[-1]}" if refused else "none refused",
            f"app live during {live['live']}, after close {after_close['live']}",
            str(memory),
            others,
        )
        assert answer.goaway is None, answer.describe()
        assert refused == ids[MAX_STREAMS:], f"refused {refused}: {answer.describe()}"
        assert set(answer.resets) == set(refused), answer.describe()
        assert live["live"] == MAX_STREAMS, live
        assert after_close["live"] == 0, after_close
        check_memory(server, memory, "concurrent streams")


# --- 2. header list size and HPACK bombs ----------------------------------------------------

_BOMB_VALUE = b"b" * 4000  # one dynamic-table entry of 4038 octets (the table holds 4096)
_STATIC_GET = bytes([0x82, 0x86, 0x84])  # :method GET, :scheme http, :path /


def _bomb_block(authority: str, references: int) -> bytes:
    """GET / with the newest dynamic-table entry (index 62) referenced ``references`` times."""
    head = _STATIC_GET + bytes([0x01]) + hpackraw.string(authority)  # :authority, not indexed
    return head + bytes([0x80 | 62]) * references


def _bomb_connection(server: Server) -> Connection:
    """A connection whose server-side HPACK table holds x-bomb: 4000 octets (after a 200)."""
    conn = connect(server)
    authority = conn.target.authority
    block = (
        _STATIC_GET
        + bytes([0x01])
        + hpackraw.string(authority)
        + bytes([0x40])  # literal with incremental indexing, new name
        + hpackraw.string("x-bomb")
        + hpackraw.string(_BOMB_VALUE)
    )
    sid = conn.new_stream_id()
    conn.send_headers(sid, block, end_stream=True)
    assert conn.expect_response(sid).status == 200
    return conn


def test_oversized_header_lists_and_hpack_bombs(backend: str, tmp_path: Path) -> None:
    with tricorn(backend, tmp_path) as server:
        memory = start_measuring(server)
        results: list[str] = []

        # a. 20 headers of 4000 octets: 80 KiB decoded, over the 64 KiB limit -> 431, and the
        #    connection carries on.
        conn = connect(server)
        big = [(f"x-big-{i}", "a" * 4000) for i in range(20)]
        sid = conn.new_stream_id()
        block = conn.encode([*request_headers(conn, "/"), *big], huffman=False)
        conn.send(header_frames(sid, block, end_stream=True))
        oversized = Answer()
        drain_until = time.monotonic() + ANSWER_TIMEOUT
        while sid not in oversized.statuses and not oversized.over:
            assert time.monotonic() < drain_until, oversized.describe()
            drain(conn, oversized, 0.25)
        assert oversized.statuses.get(sid) == 431, f"a: {oversized.describe()}"
        assert conn.roundtrip().status == 200, "a: the connection must carry on after a 431"
        conn.close()
        results.append(f"a. {len(block)} octets of headers -> {oversized.describe()}")

        # b. HPACK bomb within the decoder's hard cap: 20 one-octet references to a 4 KiB
        #    entry decode to ~80 KiB -> 431, the connection carries on.
        conn = _bomb_connection(server)
        sid = conn.new_stream_id()
        conn.send_headers(sid, _bomb_block(conn.target.authority, 20), end_stream=True)
        small_bomb = Answer()
        drain_until = time.monotonic() + ANSWER_TIMEOUT
        while sid not in small_bomb.statuses and not small_bomb.over:
            assert time.monotonic() < drain_until, small_bomb.describe()
            drain(conn, small_bomb, 0.25)
        assert small_bomb.statuses.get(sid) == 431, f"b: {small_bomb.describe()}"
        assert conn.roundtrip().status == 200, "b: the connection must carry on after a 431"
        conn.close()
        results.append(f"b. 20 refs x 4 KiB entry -> {small_bomb.describe()}")

        # c. HPACK bomb: 16000 references (64 MB decoded) in one 16000-octet HEADERS frame ->
        #    the decoder stops at its cap: GOAWAY(ENHANCE_YOUR_CALM) (or a 431).
        conn = _bomb_connection(server)
        sid = conn.new_stream_id()
        start = time.monotonic()
        conn.send_headers(sid, _bomb_block(conn.target.authority, 16000), end_stream=True)
        big_bomb = Answer()
        while not big_bomb.over and sid not in big_bomb.statuses:
            assert time.monotonic() - start < ANSWER_TIMEOUT, big_bomb.describe()
            drain(conn, big_bomb, 0.25)
        big_bomb.seconds = time.monotonic() - start
        conn.close()
        results.append(
            f"c. 16000 refs (64 MB decoded) -> {big_bomb.describe()} in {big_bomb.seconds:.2f} s"
        )

        others = bystander(server)
        stop_measuring(server, memory)
        report("2 header list size / HPACK bomb", server, *results, str(memory), others)
        answered_431 = big_bomb.statuses.get(sid) == 431
        calm = big_bomb.goaway is not None and big_bomb.goaway.error_code == f.ENHANCE_YOUR_CALM
        assert answered_431 or calm, f"c: {big_bomb.describe()}"
        check_memory(server, memory, "header lists")


# --- 3. CONTINUATION flood ------------------------------------------------------------------


def test_continuation_flood_gets_enhance_your_calm(backend: str, tmp_path: Path) -> None:
    with tricorn(backend, tmp_path) as server:
        memory = start_measuring(server)
        results: list[str] = []
        answers: list[Answer] = []
        # Many small CONTINUATIONs (the count limit), then a few 16 KiB ones (the size limit).
        for piece, count in ((b"a" * 16, 10_000), (b"a" * 16_384, 64)):
            conn = connect(server)
            sid = conn.new_stream_id()
            block = conn.encode(request_headers(conn, "/"))
            # A literal header whose value runs on through every CONTINUATION.
            opening = (
                block
                + bytes([0x00])
                + hpackraw.string("x-long")
                + hpackraw.integer(len(piece) * count, 7)
            )
            first = f.frame(f.HEADERS, f.END_STREAM, sid, opening)
            continuation = f.frame(f.CONTINUATION, 0, sid, piece)
            batches = [(first, 0), *batched(continuation, count, 100 if len(piece) > 16 else 500)]
            answer = blast(conn, batches)
            conn.close()
            answers.append(answer)
            results.append(
                f"{len(piece)}-octet CONTINUATIONs: sent {answer.units_sent} -> "
                f"{answer.describe()} ({goaway_text(answer)!r}) in {answer.seconds:.2f} s"
            )
        others = bystander(server)
        stop_measuring(server, memory)
        report("3 CONTINUATION flood", server, *results, str(memory), others)
        for answer, text in zip(answers, results, strict=True):
            assert answer.goaway is not None, text
            assert answer.goaway.error_code == f.ENHANCE_YOUR_CALM, text
        check_memory(server, memory, "CONTINUATION flood")


# --- 4. rapid reset (CVE-2023-44487) --------------------------------------------------------


def test_rapid_reset_gets_enhance_your_calm(backend: str, tmp_path: Path) -> None:
    streams = 5000
    with tricorn(backend, tmp_path) as server:
        memory = start_measuring(server)
        conn = connect(server)
        headers = request_headers(conn, "/hang")
        cancel = f.rst_payload(f.CANCEL)

        def batches() -> Iterator[tuple[bytes, int]]:
            for _ in range(streams // 100):
                chunk = bytearray()
                for _ in range(100):
                    sid = conn.new_stream_id()
                    chunk += f.frame(
                        f.HEADERS, f.END_STREAM | f.END_HEADERS, sid, conn.encode(headers)
                    )
                    chunk += f.frame(f.RST_STREAM, 0, sid, cancel)
                yield bytes(chunk), 100

        answer = blast(conn, batches())
        conn.close()
        during = counts(server)
        others = bystander(server)
        after = wait_for_live(server, 0)
        stop_measuring(server, memory)
        report(
            "4 rapid reset",
            server,
            f"sent {answer.units_sent} HEADERS+RST_STREAM pairs -> {answer.describe()} "
            f"({goaway_text(answer)!r}) in {answer.seconds:.2f} s",
            f"app instances: started {after['started']}, peak live {after['peak']}, "
            f"live after {during['live']} -> {after['live']}",
            str(memory),
            others,
        )
        assert answer.goaway is not None, answer.describe()
        assert answer.goaway.error_code == f.ENHANCE_YOUR_CALM, answer.describe()
        assert answer.units_sent < streams, "the server must not take every reset"
        # The streams it took: at most the reset budget plus one read's worth of frames.
        assert after["started"] <= MAX_RESETS + MAX_STREAMS, after
        assert after["peak"] <= MAX_STREAMS, after
        assert after["live"] == 0, after
        check_memory(server, memory, "rapid reset")


# --- 5. PING / SETTINGS / empty frame floods (CVE-2019-9512, 9515, 9518) ------------------------


def _flood_frames(kind: str, conn: Connection) -> list[tuple[bytes, int]]:
    count = 20_000
    if kind == "ping":
        return list(batched(f.frame(f.PING, 0, 0, b"12345678"), count))
    if kind == "settings":
        payload = f.settings_payload((f.SETTINGS_HEADER_TABLE_SIZE, 4096))
        return list(batched(f.frame(f.SETTINGS, 0, 0, payload), count))
    if kind == "empty-data":
        sid = conn.new_stream_id()
        block = conn.encode(request_headers(conn, "/hang", method="POST"))
        opening = f.frame(f.HEADERS, f.END_HEADERS, sid, block)
        return [(opening, 0), *batched(f.frame(f.DATA, 0, sid, b""), count)]
    if kind == "empty-headers":
        # Zero-length HEADERS (END_HEADERS, no END_STREAM) opening new streams: each is a
        # malformed request (no pseudo-headers).
        frames = [
            f.frame(f.HEADERS, f.END_HEADERS, 2 * index + 1, b"") for index in range(count // 4)
        ]
        return [(b"".join(frames[i : i + 500]), 500) for i in range(0, len(frames), 500)]
    assert kind == "empty-continuation"
    # An empty HEADERS without END_HEADERS, then empty CONTINUATIONs (the server runs with a
    # high CONTINUATION limit so that the empty-frame counter is what answers).
    opening = f.frame(f.HEADERS, 0, 1, b"")
    return [(opening, 1), *batched(f.frame(f.CONTINUATION, 0, 1, b""), count)]


FLOOD_FLAGS = {"empty-continuation": ("--h2-max-continuation-frames", "100000")}
FLOOD_EXPECTED = {
    "ping": "PING flood",
    "settings": "SETTINGS flood",
    "empty-data": "empty DATA",
    "empty-headers": "too many malformed",
    "empty-continuation": "empty HEADERS/CONTINUATION",
}


@pytest.mark.parametrize("kind", list(FLOOD_EXPECTED))
def test_floods_get_enhance_your_calm(backend: str, kind: str, tmp_path: Path) -> None:
    with tricorn(backend, tmp_path, *FLOOD_FLAGS.get(kind, ())) as server:
        memory = start_measuring(server)
        conn = connect(server)
        batches = _flood_frames(kind, conn)
        answer = blast(conn, batches)
        conn.close()
        others = bystander(server)
        stop_measuring(server, memory)
        report(
            f"5 {kind} flood",
            server,
            f"sent {answer.units_sent} frames -> {answer.describe()} "
            f"({goaway_text(answer)!r}) in {answer.seconds:.2f} s",
            str(memory),
            others,
        )
        assert answer.goaway is not None, answer.describe()
        assert answer.goaway.error_code == f.ENHANCE_YOUR_CALM, answer.describe()
        assert FLOOD_EXPECTED[kind] in goaway_text(answer), goaway_text(answer)
        check_memory(server, memory, f"{kind} flood")


# --- 6. zero-window reader ------------------------------------------------------------------


def _open_streams(conn: Connection, path: str, count: int) -> list[int]:
    ids = [conn.new_stream_id() for _ in range(count)]
    headers = request_headers(conn, path)
    conn.send(b"".join(header_frames(sid, conn.encode(headers), end_stream=True) for sid in ids))
    return ids


def test_zero_window_reader_costs_bounded_memory(backend: str, tmp_path: Path) -> None:
    with tricorn(backend, tmp_path) as server:
        memory = start_measuring(server)
        # A: SETTINGS_INITIAL_WINDOW_SIZE = 0; B: default windows, never a WINDOW_UPDATE.
        zero = connect(server, [(f.SETTINGS_INITIAL_WINDOW_SIZE, 0)])
        stingy = connect(server)
        zero.auto_window_update = stingy.auto_window_update = False
        _open_streams(zero, "/stream", MAX_STREAMS)
        _open_streams(stingy, "/stream", MAX_STREAMS)
        zero_answer, stingy_answer = Answer(), Answer()
        samples: list[int] = []
        others = ""
        start = time.monotonic()
        while time.monotonic() - start < HOLD_SECONDS:
            drain(zero, zero_answer, 0.1)
            drain(stingy, stingy_answer, 0.1)
            samples.append(server.rss())
            if not others and time.monotonic() - start > HOLD_SECONDS / 2:
                others = bystander(server)  # while the streams are blocked
        live = counts(server)
        stop_measuring(server, memory)
        zero.close()
        stingy.close()
        after = wait_for_live(server, 0)
        report(
            "6 zero-window reader",
            server,
            f"window 0, {MAX_STREAMS} x /stream -> {zero_answer.describe()}",
            f"window 65535 never updated, {MAX_STREAMS} x /stream -> {stingy_answer.describe()}",
            f"held {HOLD_SECONDS:.0f} s, RSS samples {min(samples)}..{max(samples)} KiB",
            f"app live {live['live']} -> {after['live']} after close",
            str(memory),
            others,
        )
        assert zero_answer.data_bytes == 0, zero_answer.describe()
        assert stingy_answer.data_bytes <= f.DEFAULT_WINDOW, stingy_answer.describe()
        assert len(zero_answer.statuses) == MAX_STREAMS, zero_answer.describe()
        assert not zero_answer.over and not stingy_answer.over
        assert live["live"] == 2 * MAX_STREAMS, live
        assert after["live"] == 0, after
        check_memory(server, memory, "zero-window reader")


# --- 7. a client that never reads ---------------------------------------------------------


@pytest.mark.parametrize("chunk_kib", [64, 256])
def test_client_that_never_reads_responses_costs_bounded_memory(
    backend: str, chunk_kib: int, tmp_path: Path
) -> None:
    with tricorn(backend, tmp_path) as server:
        memory = start_measuring(server)
        # Opens every window wide, asks for 100 x 1 GiB, never reads a byte.
        greedy = connect(server, [(f.SETTINGS_INITIAL_WINDOW_SIZE, f.MAX_WINDOW)])
        increment = f.window_update_payload(f.MAX_WINDOW - f.DEFAULT_WINDOW)
        greedy.send(f.frame(f.WINDOW_UPDATE, 0, 0, increment))
        _open_streams(greedy, f"/stream?kib={chunk_kib}", MAX_STREAMS)
        start = time.monotonic()
        others = bystander(server)
        rest = UNREAD_HOLD_SECONDS - (time.monotonic() - start)
        if rest > 0:  # keep the connection unread for the rest of the hold time
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.process.wait(timeout=rest)
        assert server.alive()
        live = counts(server)
        stop_measuring(server, memory)
        greedy.close()
        after = wait_for_live(server, 0)
        report(
            f"7a client never reads responses ({chunk_kib} KiB chunks)",
            server,
            f"{MAX_STREAMS} x /stream?kib={chunk_kib}, windows 2^31-1, unread for "
            f"{UNREAD_HOLD_SECONDS:.0f} s; app live {live['live']} -> {after['live']} after close",
            str(memory),
            others,
        )
        assert live["live"] == MAX_STREAMS, live
        assert after["live"] == 0, after
        check_memory(server, memory, f"client that never reads {chunk_kib} KiB chunks")


class SmallBufferConnection(Connection):
    """A client connection with a 64 KiB receive buffer (set before connect: no autotuning),
    so that a client that never reads fills the server's socket quickly."""

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.settimeout(2.0)
        sock.connect((self.target.host, self.target.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def test_unread_ping_flood_stops_the_reader(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    max_pings = 1_200_000  # 20 MB of PINGs at most
    flood_seconds = 8.0
    # The PING limit and the glitch budget are lifted so that only the output-buffer
    # backpressure can stop the flood.
    lifted = ("--h2-max-pings-per-window", "100000000", "--h2-max-glitches-per-window", "100000000")
    with tricorn(backend, tmp_path, *lifted) as server:
        memory = start_measuring(server)
        pinger = SmallBufferConnection(server.target())
        pinger.handshake()
        ping = f.frame(f.PING, 0, 0, b"12345678")
        pings = 0
        send_stalled = False
        start = time.monotonic()
        pinger.sock.settimeout(0.5)
        while time.monotonic() - start < flood_seconds and pings < max_pings:
            try:
                pinger.sock.sendall(ping * 1000)
            except TimeoutError:
                send_stalled = True  # the server stopped reading: its window is closed
                break
            pings += 1000
        stall = time.monotonic() - start
        others = bystander(server)
        stop_measuring(server, memory)
        pinger.close()
        report(
            "7b unread PING flood",
            server,
            f"{pings} PINGs ({pings * 17 // 1024} KiB) taken, their ACKs never read; "
            f"server stopped reading: {send_stalled} after {stall:.2f} s",
            str(memory),
            others,
        )
        assert send_stalled, (
            f"the server read {pings} PINGs ({pings * 17 // 1024} KiB) in {stall:.2f} s "
            f"without its answers being read; {memory}"
        )
        check_memory(server, memory, "unread PING flood")


# --- 8. MadeYouReset (CVE-2025-8671) and the glitch budget ----------------------------------


def _made_you_reset(conn: Connection, count: int, variant: str) -> Iterator[tuple[bytes, int]]:
    """Streams opened with HEADERS(END_STREAM), then a second HEADERS or a DATA on each."""
    headers = request_headers(conn, "/hang")
    for _ in range(count // 100):
        chunk = bytearray()
        for _ in range(100):
            sid = conn.new_stream_id()
            chunk += f.frame(f.HEADERS, f.END_STREAM | f.END_HEADERS, sid, conn.encode(headers))
            if variant == "headers":
                late = conn.encode([("x-late", "1")])
                chunk += f.frame(f.HEADERS, f.END_STREAM | f.END_HEADERS, sid, late)
            else:
                chunk += f.frame(f.DATA, 0, sid, b"x")
        yield bytes(chunk), 100


GLITCH_FLOODS: dict[str, tuple[tuple[str, ...], str]] = {
    # kind: (server flags lifting the per-kind limit, text of the GOAWAY)
    # (the reset streams hold their slots while their apps end: some new ones are refused)
    "made-you-reset-headers": ((), "too many stream"),
    "made-you-reset-data": ((), "too many stream"),
    "window-update": ((), "glitch"),
    "settings-values": (("--h2-max-settings-per-window", "1000000"), "glitch"),
    "ping": (("--h2-max-pings-per-window", "1000000"), "glitch"),
    "priority": (("--h2-max-priority-frames-per-window", "1000000"), "glitch"),
    "empty-data": (("--h2-max-empty-frames-per-window", "1000000"), "glitch"),
}
GLITCH_BUDGET = 1000  # default h2_max_glitches_per_window
FLOOD_WINDOW = 10.0  # default h2_flood_window: the budget drains GLITCH_BUDGET per window


def _glitch_flood(kind: str, conn: Connection) -> list[tuple[bytes, int]]:
    count = 100_000
    if kind.startswith("made-you-reset"):
        return list(_made_you_reset(conn, 5000, kind.rsplit("-", 1)[1]))
    if kind == "window-update":
        return list(batched(f.frame(f.WINDOW_UPDATE, 0, 0, f.window_update_payload(1)), count))
    if kind == "settings-values":
        frames = [
            f.frame(
                f.SETTINGS,
                0,
                0,
                f.settings_payload(
                    (f.SETTINGS_INITIAL_WINDOW_SIZE, 65535 + index % 2),
                    (f.SETTINGS_HEADER_TABLE_SIZE, 4096 - index % 2),
                    (f.SETTINGS_MAX_FRAME_SIZE, 16384 + index % 7),
                ),
            )
            for index in range(20_000)
        ]
        return [(b"".join(frames[i : i + 500]), 500) for i in range(0, len(frames), 500)]
    if kind == "ping":
        return list(batched(f.frame(f.PING, 0, 0, b"12345678"), count))
    if kind == "priority":
        return list(batched(f.frame(f.PRIORITY, 0, 3, f.priority_payload(0, 15)), count))
    assert kind == "empty-data"
    sid = conn.new_stream_id()
    block = conn.encode(request_headers(conn, "/hang", method="POST"))
    opening = f.frame(f.HEADERS, f.END_HEADERS, sid, block)
    return [(opening, 0), *batched(f.frame(f.DATA, 0, sid, b""), count)]


@pytest.mark.parametrize("kind", list(GLITCH_FLOODS))
def test_glitch_floods_get_enhance_your_calm(backend: str, kind: str, tmp_path: Path) -> None:
    flags, expected = GLITCH_FLOODS[kind]
    with tricorn(backend, tmp_path, *flags) as server:
        memory = start_measuring(server)
        conn = connect(server)
        batches = _glitch_flood(kind, conn)
        total = sum(units for _, units in batches)
        answer = blast(conn, batches)
        conn.close()
        others = bystander(server)
        after = wait_for_live(server, 0)
        stop_measuring(server, memory)
        report(
            f"8 {kind}",
            server,
            f"sent {answer.units_sent} of {total} -> {answer.describe()}, {answer.acks} ACKs "
            f"({goaway_text(answer)!r}) in {answer.seconds:.2f} s",
            f"app instances: started {after['started']}, peak live {after['peak']}",
            str(memory),
            others,
        )
        assert answer.goaway is not None, answer.describe()
        assert answer.goaway.error_code == f.ENHANCE_YOUR_CALM, answer.describe()
        assert expected in goaway_text(answer), goaway_text(answer)
        if kind.startswith("made-you-reset"):
            # (These frames are small: the whole flood may fit in the socket buffers before
            # the client reads the GOAWAY, so the bound is what the server did.)
            # One RST_STREAM(STREAM_CLOSED) per stream, never one per frame, and no more
            # streams than the reset limit allows (plus what one read held).
            codes = set(answer.resets.values())
            assert f.STREAM_CLOSED in codes, answer.describe()
            assert codes <= {f.STREAM_CLOSED, f.REFUSED_STREAM}, answer.describe()
            assert len(answer.resets) <= MAX_RESETS + 1, answer.describe()
            assert after["peak"] <= MAX_STREAMS, after
            assert after["started"] <= MAX_RESETS + MAX_STREAMS, after
        elif kind in ("settings-values", "ping"):
            # The server answers each of these it processes, in order and before its GOAWAY,
            # so the ACKs read up to the GOAWAY count what it took of the flood: it stopped
            # at the budget. (What the client managed to write is no measure here: while
            # the server waits for a core, the socket buffers take the whole flood.) The
            # budget is a leaky bucket: it drains GLITCH_BUDGET / FLOOD_WINDOW per second,
            # and the server charged every frame between our first write and its GOAWAY.
            drained = math.ceil(answer.seconds * GLITCH_BUDGET / FLOOD_WINDOW)
            assert answer.acks <= GLITCH_BUDGET + drained, (answer.acks, answer.seconds)
            assert answer.acks < total, "the server must not take the whole flood"
        else:
            assert answer.units_sent < total, "the server must not take the whole flood"
        assert after["live"] == 0, after
        check_memory(server, memory, kind)


# --- 9. buffered request bodies are bounded by the connection window ------------------------

CONNECTION_WINDOW = 4 << 20  # default h2_connection_window_size
STREAM_WINDOW = 1 << 20  # default h2_initial_window_size


def test_unread_uploads_on_many_streams_are_bounded_by_the_windows(
    backend: str, tmp_path: Path
) -> None:
    with tricorn(backend, tmp_path) as server:
        memory = start_measuring(server)
        conn = connect(server)
        drain(conn, Answer(), 0.2)  # the server's connection WINDOW_UPDATE
        granted = conn.send_window
        headers = request_headers(conn, "/sit", method="POST")
        piece = b"u" * f.DEFAULT_MAX_FRAME_SIZE
        sent = 0
        for _ in range(MAX_STREAMS):
            sid = conn.new_stream_id()
            conn.stream_windows[sid] = conn.initial_window
            conn.send(f.frame(f.HEADERS, f.END_HEADERS, sid, conn.encode(headers)))
            # Send as much as the windows allow: the app never reads, so they never reopen.
            while (size := min(len(piece), conn.send_window, conn.stream_windows[sid])) > 0:
                conn.send(f.frame(f.DATA, 0, sid, piece[:size]))
                conn.send_window -= size
                conn.stream_windows[sid] -= size
                sent += size
            if conn.send_window <= 0:
                break
        answer = Answer()
        drain(conn, answer, 1.0)  # no window may open while nothing is read
        reopened = conn.send_window
        others = bystander(server)
        stop_measuring(server, memory)
        conn.close()
        report(
            "9 unread uploads",
            server,
            f"connection window {granted}, stream window {conn.initial_window}: sent {sent} "
            f"bytes on {sid // 2 + 1} streams, window after 1 s {reopened}; {answer.describe()}",
            str(memory),
            others,
        )
        assert granted == CONNECTION_WINDOW and conn.initial_window == STREAM_WINDOW
        assert sent == min(CONNECTION_WINDOW, MAX_STREAMS * STREAM_WINDOW)
        assert reopened == 0, "the server gave window for bytes nobody read"
        assert not answer.over, answer.describe()
        check_memory(server, memory, "unread uploads")


# --- 10. a reset stream keeps its slot until its app instance has ended -----------------------


def test_reset_streams_hold_their_slots_until_their_apps_end(backend: str, tmp_path: Path) -> None:
    with tricorn(backend, tmp_path) as server:
        memory = start_measuring(server)
        conn = connect(server)
        # 100 apps that never read and take SIT_SECONDS to return, each stream reset at once.
        ids = _open_streams(conn, "/sit", MAX_STREAMS)
        conn.send(b"".join(f.frame(f.RST_STREAM, 0, sid, f.rst_payload(f.CANCEL)) for sid in ids))
        extra = conn.new_stream_id()
        conn.send_headers(extra, conn.request_headers(path="/"), end_stream=True)
        answer = Answer()
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while extra not in answer.resets and extra not in answer.statuses and not answer.over:
            assert time.monotonic() < deadline, answer.describe()
            drain(conn, answer, 0.25)
        refused = answer.resets.get(extra)
        # Once the apps have returned, the slots are free again (polled, bounded).
        served = 0
        deadline = time.monotonic() + 15.0
        while not served and time.monotonic() < deadline:
            sid = conn.new_stream_id()
            conn.send_headers(sid, conn.request_headers(path="/"), end_stream=True)
            later = Answer()
            while sid not in later.resets and sid not in later.statuses and not later.over:
                assert time.monotonic() < deadline, later.describe()
                drain(conn, later, 0.25)
            served = later.statuses.get(sid, 0)
            if not served:  # refused: the apps are still running; wait a moment for them
                with contextlib.suppress(subprocess.TimeoutExpired):
                    server.process.wait(timeout=0.2)
        others = bystander(server)
        stop_measuring(server, memory)
        conn.close()
        report(
            "10 reset streams hold their slots",
            server,
            f"{MAX_STREAMS} x /sit reset at once, stream {extra} -> {answer.describe()}",
            f"after the apps returned: {served}",
            str(memory),
            others,
        )
        assert refused == f.REFUSED_STREAM, answer.describe()
        assert answer.goaway is None, answer.describe()
        assert served == 200
        check_memory(server, memory, "reset streams holding slots")

"""Metrics on a real tricorn: Prometheus scrapes on ``metrics_bind`` (parsed with
prometheus_client's own parser) and statsd datagrams to a real UDP listener, after real
HTTP/1.1, h2c and WebSocket traffic and real protocol errors, on both backends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import trustme
from hyperframe.frame import PingFrame
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import (
    RunningServer,
    free_port,
    open_raw,
    read_response,
    read_until_closed,
    serving,
)
from tests.integration import ws_apps
from tests.integration.apps import read_body
from tests.integration.h2_client import H2Client
from tests.integration.test_access_log import LIMITS, PARSERS, REFUSED_HEADS, raw_exchange
from tests.integration.test_proxy_protocol import V1, v2
from tests.integration.test_websocket import ws_close, ws_connect, ws_url
from tests.integration.test_workers import (
    BACKENDS,
    GUARD,
    ROOT,
    TRICORN,
    Server,
    supervisor,
    wait_until,
)
from tricorn.server.asgi_types import Receive, Scope, Send
from tricorn.server.metrics import STATSD_MAX_TIMINGS

pytestmark = pytest.mark.anyio

#: label values (sorted name=value pairs) -> sample value, by sample name.
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """WebSocket echo; ``/wait`` waits for the client to leave; anything else: hello."""
    if scope["type"] == "websocket":
        await ws_apps.echo(scope, receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["path"] == "/wait":
        while (await receive())["type"] != "http.disconnect":
            pass
        return
    await read_body(receive)  # an unread body may close the keep-alive connection
    body = b"Hello, world!"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


@contextmanager
def metrics_socket() -> Iterator[tuple[str, int]]:
    """A listening socket for ``metrics_bind``, given as ``fd://N`` (the server owns it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    yield f"fd://{sock.detach()}", port


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


async def scrape(port: int, path: str = "/metrics") -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{port}{path}", timeout=5)


async def scrape_until(port: int, done: Callable[[Samples], bool]) -> Samples:
    """Scrape until ``done`` holds (the last response's counts are taken after the client
    has its bytes), bounded."""
    with anyio.fail_after(10):
        while True:
            response = await scrape(port)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
            samples = parse(response.text)
            if done(samples):
                return samples
            await anyio.sleep(0.02)


async def http11_traffic(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        for _ in range(3):
            assert (await client.get("/")).status_code == 200
        assert (await client.post("/", content=b"x" * 100)).status_code == 200
        assert (await client.request("PROPFIND", "/")).status_code == 200


async def h2c_traffic(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, http1=False, http2=True) as client:
        for _ in range(2):
            response = await client.get("/")
            assert response.status_code == 200
            assert response.http_version == "HTTP/2"


async def websocket_traffic(server: RunningServer) -> None:
    async with ws_connect(ws_url(server)) as ws:
        for text in ("one", "two"):
            await ws.send(text)
            assert await ws.recv() == text
        await ws_close(ws)


async def bad_requests(server: RunningServer) -> None:
    requests = [
        b"GET / HTTP/1.1\r\n\r\n",  # no Host: 400
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n",  # 431
    ]
    statuses = []
    for request in requests:
        async with await open_raw(server) as stream:
            await stream.send(request)
            statuses.append((await read_until_closed(stream)).split(b" ", 2)[1])
    assert statuses == [b"400", b"400", b"431"]


async def h2_reset(server: RunningServer) -> None:
    """An h2c stream the client resets (CANCEL) while its app waits."""
    async with await open_raw(server) as stream:
        client = H2Client(stream)
        with anyio.fail_after(5):
            await client.start()
            stream_id = await client.request("GET", "/wait", end_stream=True)
            await client.reset(stream_id)
            # A second request on the same connection is still served.
            response = await client.response(await client.request("GET", "/after"))
    assert response.status == 200


def expected(samples: Samples) -> bool:
    requests = "tricorn_requests_total"
    return (
        value(samples, requests, protocol="http/1.1", method="GET", status="2xx", outcome="ok") == 3
        and value(samples, requests, protocol="h2", method="GET", status="2xx", outcome="ok") == 3
        and value(samples, "tricorn_requests_in_flight") == 0
        and value(samples, "tricorn_connections_open", protocol="http/1.1") == 0
        and value(samples, "tricorn_connections_open", protocol="h2") == 0
        and value(samples, "tricorn_websocket_connections_open") == 0
    )


async def test_scrape_counts_http11_h2c_websocket_and_errors() -> None:
    with metrics_socket() as (bind, port):
        async with serving(app, metrics_bind=bind, max_head_size=1024) as server:
            await http11_traffic(server)
            await h2c_traffic(server)
            await websocket_traffic(server)
            await bad_requests(server)
            await h2_reset(server)
            samples = await scrape_until(port, expected)
            other = await scrape(port, "/")
            missing = await scrape(port, "/metrics/x")

    def v(name: str, **labels: str) -> float:
        return value(samples, name, **labels)

    ok = {"protocol": "http/1.1", "status": "2xx", "outcome": "ok"}
    assert v("tricorn_requests_total", method="POST", **ok) == 1
    assert v("tricorn_requests_total", method="other", **ok) == 1
    # the refused heads and the reset stream are requests too, with their outcome
    rejected = {"protocol": "http/1.1", "method": "GET", "outcome": "rejected"}
    assert v("tricorn_requests_total", status="4xx", **rejected) == 2
    assert v("tricorn_requests_total", status="4xx", **{**rejected, "method": "POST"}) == 1
    gone = {"protocol": "h2", "method": "GET", "outcome": "client_gone", "status": "none"}
    assert v("tricorn_requests_total", **gone) == 1
    # 3 + 1 + 1 HTTP/1.1 requests and 3 refused (+ the WebSocket handshake is no HTTP
    # request), 3 + 1 on h2: the histogram holds every request counted
    assert v("tricorn_request_duration_seconds_count", protocol="http/1.1") == 8
    assert v("tricorn_request_duration_seconds_count", protocol="h2") == 4
    assert v("tricorn_request_duration_seconds_bucket", protocol="h2", le="+Inf") == 4
    assert v("tricorn_request_duration_seconds_sum", protocol="h2") > 0
    # one httpx HTTP/1.1 keep-alive connection, the WebSocket's, 3 bad requests, the h2c
    # client's and the raw h2 connection
    assert v("tricorn_connections_total", protocol="http/1.1") == 5
    assert v("tricorn_connections_total", protocol="h2") == 2
    assert v("tricorn_received_bytes_total", protocol="http/1.1") > 100
    assert v("tricorn_sent_bytes_total", protocol="h2") > 0
    assert v("tricorn_websocket_connections_total") == 1
    assert v("tricorn_websocket_messages_received_total") == 2
    assert v("tricorn_websocket_messages_sent_total") == 2
    assert v("tricorn_http2_streams_total") == 4  # 2 httpx + /wait + /after
    assert v("tricorn_http2_resets_received_total", error_code="CANCEL") == 1
    assert v("tricorn_protocol_errors_total", protocol="http/1.1", kind="bad_request") == 1
    assert v("tricorn_protocol_errors_total", protocol="http/1.1", kind="smuggling") == 1
    assert v("tricorn_protocol_errors_total", protocol="http/1.1", kind="head_too_large") == 1
    # the graceful GOAWAY of an idle connection is not sent before the scrape
    assert other.status_code == 404
    assert missing.status_code == 404


async def rewriting_app(scope: Scope, receive: Receive, send: Send) -> None:
    """An app (a method-override middleware, say) that rewrites its scope's method and
    version before it answers."""
    if scope["type"] == "http":
        scope["method"] = "DELETE"
        scope["http_version"] = "7"
    await app(scope, receive, send)


async def test_requests_are_labelled_by_what_the_client_sent_not_the_rewritten_scope() -> None:
    with metrics_socket() as (bind, port):
        async with serving(rewriting_app, metrics_bind=bind) as server:
            await http11_traffic(server)  # 3 GETs, a POST, a method of "other"
            await h2c_traffic(server)

            def done(samples: Samples) -> bool:
                return value(samples, "tricorn_request_duration_seconds_count", protocol="h2") >= 2

            samples = await scrape_until(port, done)
    ok = {"status": "2xx", "outcome": "ok"}
    requests = samples["tricorn_requests_total"]
    assert value(samples, "tricorn_requests_total", protocol="http/1.1", method="GET", **ok) == 3
    assert value(samples, "tricorn_requests_total", protocol="http/1.1", method="POST", **ok) == 1
    assert value(samples, "tricorn_requests_total", protocol="h2", method="GET", **ok) == 2
    assert not any(("method", "DELETE") in labels for labels in requests)


async def test_h2_abuse_limit_goaway_and_reset_sent_are_counted() -> None:
    """A PING flood past its limit is a GOAWAY(ENHANCE_YOUR_CALM) and an abuse trigger; a
    stream whose app fails after its head is reset (INTERNAL_ERROR)."""

    async def fails_midway(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("the app fails after its head (expected in this test)")

    with metrics_socket() as (bind, port):
        async with serving(fails_midway, metrics_bind=bind, h2_max_pings_per_window=5) as server:
            async with await open_raw(server) as stream:
                client = H2Client(stream)
                with anyio.fail_after(5):
                    await client.start()
                    stream_id = await client.request("GET", "/", end_stream=True)
                    await client.wait_for(lambda f: f.kind == "RST_STREAM")
                    assert client.stream_frames(stream_id)[-1].kind == "RST_STREAM"
                    # One write: the server may close after the 6th PING, and a later
                    # write of ours would then meet the reset (seen once in CI).
                    await client.transport.send(
                        b"".join(PingFrame(0, n.to_bytes(8, "big")).serialize() for n in range(10))
                    )
                    frames = await client.read_until_closed()
            assert any(frame.kind == "GOAWAY" for frame in frames)

            def done(samples: Samples) -> bool:
                return value(samples, "tricorn_connections_open", protocol="h2") == 0

            samples = await scrape_until(port, done)

    def v(name: str, **labels: str) -> float:
        return value(samples, name, **labels)

    assert v("tricorn_http2_resets_sent_total", error_code="INTERNAL_ERROR") == 1
    assert v("tricorn_http2_goaways_sent_total", error_code="ENHANCE_YOUR_CALM") == 1
    assert v("tricorn_abuse_limit_triggers_total", limit="ping_flood") == 1
    assert v("tricorn_protocol_errors_total", protocol="h2", kind="connection_error") == 1


async def test_metrics_socket_answers_only_get_metrics() -> None:
    with metrics_socket() as (bind, port):
        async with serving(app, metrics_bind=bind):
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                post = await read_response(stream)
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(b"garbage\r\n\r\n")
                garbage = await read_until_closed(stream)
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(b"HEAD /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
                head = await read_until_closed(stream)
    assert post.startswith(b"HTTP/1.1 405 ")
    assert garbage.startswith(b"HTTP/1.1 400 ")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert head.endswith(b"\r\n\r\n")  # no body


# --- statsd -------------------------------------------------------------------------------


def parse_statsd(datagrams: list[bytes]) -> list[tuple[str, str, str, dict[str, str]]]:
    """(name, value, type, tags) per line."""
    lines = []
    for datagram in datagrams:
        for line in datagram.decode().split("\n"):
            name, _, rest = line.partition(":")
            fields = rest.split("|")
            tags: dict[str, str] = {}
            for extra in fields[2:]:
                if extra.startswith("#"):
                    tags = dict(tag.split(":", 1) for tag in extra[1:].split(","))
            lines.append((name, fields[0], fields[1], tags))
    return lines


@pytest.mark.parametrize("dogstatsd", [False, True])
async def test_statsd_datagrams(dogstatsd: bool) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    port = receiver.getsockname()[1]
    settings: dict[str, Any] = {
        "statsd_host": f"127.0.0.1:{port}",
        "statsd_interval": 0.05,
        "statsd_prefix": "web",
        "statsd_dogstatsd": dogstatsd,
        "statsd_tags": ["env:test"] if dogstatsd else [],
    }
    datagrams: list[bytes] = []

    def counted(lines: list[tuple[str, str, str, dict[str, str]]], name: str) -> float:
        return sum(float(v) for n, v, kind, _ in lines if n == name and kind == "c")

    requests = "web.requests" if dogstatsd else "web.requests.http_1_1.GET.2xx.ok"
    try:
        async with serving(app, **settings) as server:
            async with httpx.AsyncClient(base_url=server.url) as client:
                for _ in range(3):
                    assert (await client.get("/")).status_code == 200
            with anyio.fail_after(10):
                while counted(parse_statsd(datagrams), requests) < 3:
                    await anyio.wait_readable(receiver)
                    datagrams.append(receiver.recv(65536))
    finally:
        receiver.close()
    lines = parse_statsd(datagrams)
    assert counted(lines, requests) == 3  # counters are the differences since the last flush
    assert all(len(datagram) <= 1432 for datagram in datagrams)
    timings = [line for line in lines if line[0] == "web.request_duration"]
    assert len(timings) == 3 and all(kind == "ms" for _, _, kind, _ in timings)
    gauges = {name for name, _, kind, _ in lines if kind == "g"}
    if dogstatsd:
        tagged = [tags for name, _, _, tags in lines if name == requests]
        assert tagged[0] == {
            "env": "test",
            "protocol": "http/1.1",
            "method": "GET",
            "status": "2xx",
            "outcome": "ok",
        }
        assert "web.connections_open" in gauges
    else:
        assert "web.connections_open.http_1_1" in gauges


async def test_statsd_sends_every_count_exactly_once_across_flushes() -> None:
    """Requests spread over many flushes (and the last one, at shutdown): the counter
    lines received add up to the requests made, no count lost or sent twice."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    receiver.setblocking(False)
    port = receiver.getsockname()[1]
    datagrams: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                datagrams.append(receiver.recv(65536))
            except BlockingIOError:
                return

    sent = 0
    try:
        settings: dict[str, Any] = {"statsd_host": f"127.0.0.1:{port}", "statsd_interval": 0.01}
        async with (
            serving(app, **settings) as server,
            httpx.AsyncClient(base_url=server.url) as client,
        ):
            for round_number in range(6):
                for _ in range(5):
                    assert (await client.get("/")).status_code == 200
                    sent += 1
                # Wait for a flush that carries counts, so that the requests are spread
                # over several flushes.
                with anyio.fail_after(10):
                    while True:
                        await anyio.wait_readable(receiver)
                        drain()
                        if sum(b"|c" in datagram for datagram in datagrams) > round_number:
                            break
        drain()  # the flush at shutdown went out before serve returned
    finally:
        receiver.close()
    lines = parse_statsd(datagrams)
    requests = [float(value) for name, value, kind, _ in lines if name == REQUESTS_LINE]
    assert len(requests) >= 6  # the counts went out in several flushes
    assert sum(requests) == sent
    timings = [line for line in lines if line[0] == "tricorn.request_duration"]
    assert len(timings) == sent  # under the sample's size: every duration, once


REQUESTS_LINE = "tricorn.requests.http_1_1.GET.2xx.ok"


async def test_statsd_timers_past_the_sample_size_are_a_sample_with_its_rate() -> None:
    """More requests in one interval than the sample holds: the flush (here the last one,
    at shutdown) counts every request and sends a sample of between half and all of
    STATSD_MAX_TIMINGS timer lines (one of each pair of requests once the sample was full),
    each with the sample rate, every value one of a request's durations (>= 0)."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    receiver.setblocking(False)
    port = receiver.getsockname()[1]
    count = STATSD_MAX_TIMINGS + STATSD_MAX_TIMINGS // 4
    datagrams: list[bytes] = []
    try:
        settings: dict[str, Any] = {"statsd_host": f"127.0.0.1:{port}", "statsd_interval": 3600}
        async with serving(app, **settings) as server:
            stream = await open_raw(server)
            async with stream:
                # Pipelined, in batches: the server answers them one after another.
                for start in range(0, count, 50):
                    batch = min(50, count - start)
                    await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * batch)
                    for _ in range(batch):
                        assert (await read_response(stream)).startswith(b"HTTP/1.1 200 ")
        while True:  # the flush at shutdown went out before serve returned
            try:
                datagrams.append(receiver.recv(65536))
            except BlockingIOError:
                break
    finally:
        receiver.close()
    lines = parse_statsd(datagrams)
    requests = [float(value) for name, value, kind, _ in lines if name == REQUESTS_LINE]
    assert requests == [count]
    timings = [line for line in lines if line[0] == "tricorn.request_duration"]
    # 1,000 from windows of one request, then (full) 500 of them kept and one from each
    # window of two: 625, give or take the last window's.
    assert STATSD_MAX_TIMINGS // 2 < len(timings) < STATSD_MAX_TIMINGS
    assert abs(len(timings) - 625) <= 1
    assert all(kind == "ms" and float(value) >= 0 for _, value, kind, _ in timings)
    # Each line stands for count / len(timings) requests: statsd's "|@rate".
    rate = f"|@{len(timings) / count:.4g}"
    raw = [line for datagram in datagrams for line in datagram.decode().split("\n")]
    sampled = [line for line in raw if line.startswith("tricorn.request_duration:")]
    assert len(sampled) == len(timings) and all(rate in line for line in sampled)


# --- workers > 1: the supervisor exports per-worker series and the sums --------------------


def sync_scrape(port: int) -> Samples:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=GUARD)
    assert response.status_code == 200
    return parse(response.text)


def scrape_when(port: int, done: Callable[[Samples], bool], what: str) -> Samples:
    """Scrape until ``done`` (workers send their snapshots every second), bounded."""
    found: list[Samples] = []

    def check() -> bool:
        found[:] = [sync_scrape(port)]
        return done(found[0])

    wait_until(check, what)
    return found[0]


def served_by(server: Server, count: int) -> dict[int, int]:
    """``count`` requests, each on a new connection; how many each worker pid answered."""
    by_pid: dict[int, int] = {}
    for _ in range(count):
        response = server.get("/")
        assert response.status_code == 200
        pid = int(response.text.split()[1])
        by_pid[pid] = by_pid.get(pid, 0) + 1
    return by_pid


REQUESTS = "tricorn_requests_total"
OK = {"protocol": "http/1.1", "method": "GET", "status": "2xx", "outcome": "ok"}


def per_worker(samples: Samples) -> dict[int, float]:
    """Requests per worker pid, from the per-worker series and the slots' pids."""
    pids = {
        dict(labels)["worker"]: int(pid)
        for labels, pid in samples.get("tricorn_worker_pid", {}).items()
    }
    return {
        pids[dict(labels)["worker"]]: count
        for labels, count in samples.get("tricorn_worker_requests_total", {}).items()
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_workers_per_worker_series_and_sums_survive_replacement(
    tmp_path: Path, backend: str
) -> None:
    port = free_port()
    with supervisor(
        tmp_path, "--backend", backend, "--metrics-bind", f"127.0.0.1:{port}"
    ) as server:
        by_pid: dict[int, int] = {}
        deadline = 200
        while len(by_pid) < 2 and deadline > 0:  # until both workers have answered
            for pid, count in served_by(server, 10).items():
                by_pid[pid] = by_pid.get(pid, 0) + count
            deadline -= 10
        assert len(by_pid) == 2
        total = sum(by_pid.values())
        samples = scrape_when(
            port, lambda s: value(s, REQUESTS, **OK) == total, f"the sum of {total}"
        )
        assert per_worker(samples) == by_pid
        assert value(samples, "tricorn_workers") == 2
        slots = {dict(labels)["worker"] for labels in samples["tricorn_worker_pid"]}
        assert slots == {"0", "1"}

        # A graceful stop (SIGTTOU: one worker fewer) sends the final counts: the sum holds.
        server.signal(signal.SIGTTOU)
        wait_until(lambda: len(server.workers()) == 1, "one worker left")
        samples = scrape_when(port, lambda s: value(s, "tricorn_workers") == 1, "1 worker")
        assert value(samples, REQUESTS, **OK) == total
        assert value(samples, "tricorn_worker_exits_total") == 1
        (survivor,) = server.workers()
        assert per_worker(samples) == {survivor: by_pid[survivor]}

        # More requests (all to the survivor) add to the sum.
        assert served_by(server, 5) == {survivor: 5}
        total += 5
        scrape_when(port, lambda s: value(s, REQUESTS, **OK) == total, f"the sum of {total}")

        # A killed worker is replaced; what it had sent stays in the sum (what it counted
        # after its last snapshot would be lost: none here, the scrape above showed it all).
        os.kill(survivor, signal.SIGKILL)
        wait_until(lambda: server.workers() - {survivor}, "a replacement worker")
        samples = scrape_when(
            port,
            lambda s: (
                value(s, "tricorn_worker_exits_total") == 2 and value(s, "tricorn_workers") == 1
            ),
            "the replacement",
        )
        assert value(samples, REQUESTS, **OK) == total
        assert per_worker(samples).get(survivor) is None
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("metrics-tls")
    cert = trustme.CA().issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    return {"certfile": str(folder / "cert.pem"), "keyfile": str(folder / "key.pem")}


async def test_tls_handshake_failures_are_counted(tls_files: dict[str, str]) -> None:
    with metrics_socket() as (bind, port):
        settings = {**tls_files, "tls_handshake_timeout": 0.2}
        async with serving(app, metrics_bind=bind, **settings) as server:
            async with await open_raw(server) as stream:
                await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP on TLS
                await read_until_closed(stream)
            async with await open_raw(server):  # says nothing: the handshake times out
                samples = await scrape_until(
                    port,
                    lambda s: (
                        value(s, "tricorn_tls_handshake_failures_total", reason="timeout") == 1
                    ),
                )
    assert value(samples, "tricorn_tls_handshake_failures_total", reason="tls_error") == 1


#: A prometheus_client that cannot be imported, first on PYTHONPATH.
HIDDEN = 'raise ImportError("hidden by the test")\n'


@pytest.mark.parametrize("workers", ["1", "2"])
def test_metrics_bind_without_prometheus_client_stops_with_one_line(
    tmp_path: Path, workers: str
) -> None:
    (tmp_path / "prometheus_client").mkdir()
    (tmp_path / "prometheus_client" / "__init__.py").write_text(HIDDEN)
    result = subprocess.run(
        [
            *TRICORN,
            "--workers",
            workers,
            "--bind",
            "127.0.0.1:0",
            "--metrics-bind",
            "127.0.0.1:0",
            "tests.integration.apps:hello",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line or "error" in line]
    assert errors == [
        'ERROR:    config: metrics_bind = "127.0.0.1:0": prometheus_client is not installed '
        "(pip install 'tricorn[metrics]')"
    ]


def test_workers_send_statsd_with_the_slot_on_gauges(tmp_path: Path) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(GUARD)
    statsd = f"127.0.0.1:{receiver.getsockname()[1]}"
    args = ("--statsd-host", statsd, "--statsd-interval", "0.1", "--statsd-dogstatsd")
    lines: list[tuple[str, str, str, dict[str, str]]] = []
    try:
        with supervisor(tmp_path, *args) as server:
            assert all(server.get().status_code == 200 for _ in range(10))

            def counted() -> float:
                return sum(float(v) for name, v, kind, _ in lines if name == "tricorn.requests")

            while counted() < 10:
                lines.extend(parse_statsd([receiver.recv(65536)]))
            server.signal(signal.SIGTERM)
            assert server.wait_exit() == 0
    finally:
        receiver.close()
    assert counted() == 10
    workers = {tags.get("worker") for name, _, kind, tags in lines if kind == "g"}
    assert workers == {"0", "1"}


# --- requests the server refuses, responses cut short, the PROXY protocol step -----------


@pytest.mark.parametrize("parser", PARSERS)
async def test_refused_heads_are_requests_with_outcome_rejected(parser: str) -> None:
    """Every head of REFUSED_HEADS (400, 413, 414, 431, 501, 505) and a late one (408) is
    one ``requests_total{outcome="rejected"}``, as it is one access line."""
    settings = {"http1_parser": parser, "header_read_timeout": 0.3, **LIMITS}
    with metrics_socket() as (bind, port):
        async with serving(app, metrics_bind=bind, **settings) as server:
            for request, status, _, _ in REFUSED_HEADS:
                assert (await raw_exchange(server, request)).startswith(b"HTTP/1.1 %d " % status)
            assert (await raw_exchange(server, b"GET /late HTTP/1.1\r\n")).startswith(
                b"HTTP/1.1 408 "
            )
            samples = await scrape_until(port, lambda s: rejected(s) == len(REFUSED_HEADS) + 1)

    def v(**labels: str) -> float:
        return value(samples, REQUESTS, protocol="http/1.1", outcome="rejected", **labels)

    # no Host, 431, 408 | 413 | 414 and TLS bytes: no readable method | 505 | 501
    assert v(method="GET", status="4xx") == 3
    assert v(method="POST", status="4xx") == 1
    assert v(method="other", status="4xx") == 2
    assert v(method="GET", status="5xx") == 1
    assert v(method="POST", status="5xx") == 1
    assert value(samples, "tricorn_request_duration_seconds_count", protocol="http/1.1") == 8
    errors = {"protocol": "http/1.1"}
    assert value(samples, "tricorn_protocol_errors_total", kind="request_timeout", **errors) == 1
    assert value(samples, "tricorn_protocol_errors_total", kind="body_too_large", **errors) == 1
    assert value(samples, "tricorn_protocol_errors_total", kind="uri_too_long", **errors) == 1


def rejected(samples: Samples) -> float:
    return sum(
        count
        for labels, count in samples.get(REQUESTS, {}).items()
        if ("outcome", "rejected") in labels
    )


async def test_responses_cut_short_are_counted_by_outcome() -> None:
    """A 500 for a failed app (app_error), a client leaving a long poll (client_gone, no
    head sent: status "none") and a chunked body over the limit (413, rejected)."""

    async def cut(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/fail":
            raise RuntimeError("the app fails (expected in this test)")
        await app(scope, receive, send)

    with metrics_socket() as (bind, port):
        async with serving(cut, metrics_bind=bind, max_request_body_size=10) as server:
            async with httpx.AsyncClient(base_url=server.url) as client:
                assert (await client.get("/fail")).status_code == 500
            async with await open_raw(server) as stream:
                await stream.send(b"GET /wait HTTP/1.1\r\nHost: h\r\n\r\n")

                def waiting(samples: Samples) -> bool:
                    return value(samples, "tricorn_requests_in_flight") == 1

                await scrape_until(port, waiting)
            chunked = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            answer = await raw_exchange(server, chunked + b"20\r\n" + b"x" * 32 + b"\r\n")
            assert answer.startswith(b"HTTP/1.1 413 ")

            def done(samples: Samples) -> bool:
                return sum(samples.get(REQUESTS, {}).values()) == 3

            samples = await scrape_until(port, done)

    def v(**labels: str) -> float:
        return value(samples, REQUESTS, protocol="http/1.1", **labels)

    assert v(method="GET", status="5xx", outcome="app_error") == 1
    assert v(method="GET", status="none", outcome="client_gone") == 1
    assert v(method="POST", status="4xx", outcome="rejected") == 1
    assert value(samples, "tricorn_request_duration_seconds_count", protocol="http/1.1") == 3


async def test_proxy_protocol_results_are_counted() -> None:
    """Each way the PROXY protocol step ends: a relayed header, LOCAL, a malformed header,
    a health check closing at once, a late header; a header from a peer not allowed."""
    results = "tricorn_proxy_protocol_connections_total"
    settings = {"proxy_protocol": "auto", "header_read_timeout": 0.3}
    with metrics_socket() as (bind, port):
        async with serving(app, metrics_bind=bind, **settings) as server:
            request = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
            for header in (V1, v2(command=0)):  # relayed; LOCAL
                assert (await raw_exchange(server, header + request)).startswith(b"HTTP/1.1 200 ")
            assert await raw_exchange(server, b"PROXY TCP4 nonsense\r\n") == b""
            await (await open_raw(server)).aclose()  # connects, closes: a health check
            assert await raw_exchange(server, V1[:10]) == b""  # then nothing: the timeout

            def counted(samples: Samples) -> bool:
                return sum(samples.get(results, {}).values()) == 5

            samples = await scrape_until(port, counted)
    for result in ("proxy", "local", "malformed", "closed", "timeout"):
        assert value(samples, results, result=result) == 1, result
    with metrics_socket() as (bind, port):
        settings["proxy_protocol_allow_ips"] = ["10.0.0.0/8"]
        async with serving(app, metrics_bind=bind, **settings) as server:
            assert await raw_exchange(server, V1 + b"GET / HTTP/1.1\r\n\r\n") == b""
            samples = await scrape_until(port, lambda s: results in s)
    assert samples[results] == {(("result", "not_allowed"),): 1.0}


async def test_h2_resets_of_streams_already_over_are_counted() -> None:
    """A client's RST_STREAM for a stream whose response it has (h2 reports none) is a
    reset received like any other."""
    with metrics_socket() as (bind, port):
        async with serving(app, metrics_bind=bind) as server, await open_raw(server) as stream:
            client = H2Client(stream)
            with anyio.fail_after(5):
                await client.start()
                done = await client.request("GET", "/")
                assert (await client.response(done)).status == 200
                await client.reset(done)  # CANCEL, after the end: a browser's usual cleanup
                # Still served after it.
                assert (await client.response(await client.request("GET", "/"))).status == 200

            def counted(samples: Samples) -> bool:
                return (
                    value(samples, "tricorn_http2_resets_received_total", error_code="CANCEL") > 0
                )

            samples = await scrape_until(port, counted)
    assert value(samples, "tricorn_http2_resets_received_total", error_code="CANCEL") == 1
    assert value(samples, "tricorn_protocol_errors_total", protocol="h2", kind="stream_error") == 0


async def test_h2_streams_refused_after_our_goaway_are_counted() -> None:
    """At graceful shutdown the final GOAWAY names the last stream served; a stream the
    client opens after it is refused (REFUSED_STREAM), counted when the connection ends
    (seen in the statsd flush at shutdown)."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    settings = {"statsd_host": f"127.0.0.1:{receiver.getsockname()[1]}", "statsd_interval": 60}
    datagrams: list[bytes] = []
    try:
        async with serving(app, **settings) as server, await open_raw(server) as stream:
            client = H2Client(stream)
            with anyio.fail_after(5):
                await client.start()
                # Its body unfinished, the shutdown lets it run: it holds the connection open.
                waiting = await client.request("POST", "/wait", end_stream=False)
                server.shutdown.set()
                final = await client.wait_for(
                    lambda f: f.kind == "GOAWAY" and f.last_stream_id < 2**31 - 1
                )
                assert final.last_stream_id == waiting
                late = await client.request("GET", "/late")
                refused = await client.wait_for(lambda f: f.kind == "RST_STREAM")
                assert (refused.stream_id, refused.error_code) == (late, 7)  # REFUSED_STREAM
                await client.reset(waiting)  # the connection may end now
        with anyio.fail_after(5):  # the flush at shutdown
            while not any(b"REFUSED_STREAM" in datagram for datagram in datagrams):
                await anyio.wait_readable(receiver)
                datagrams.append(receiver.recv(65536))
    finally:
        receiver.close()
    lines = parse_statsd(datagrams)
    assert ("tricorn.http2_resets_sent.REFUSED_STREAM", "1", "c", {}) in lines

"""Paced (open-loop) latency client for HTTP/1.1 and HTTP/2 (h2c prior knowledge).

Requests are scheduled at a fixed total rate, spread evenly over the connections.
HTTP/1.1 keeps one request in flight per connection: when a slow response makes a request
leave after its scheduled time, its latency is counted from the *scheduled* time, so a
stall is counted in full for every request it delays (no coordinated omission, as in
wrk2); otherwise from the moment it is written (the event loop's timers are only
millisecond-precise, and their lateness is the client's, not the server's). HTTP/2 sends
each request on a new stream when its time comes, whatever is still in flight, and counts
from the moment it is written; when the server's stream limit (SETTINGS_MAX_CONCURRENT_
STREAMS) is reached it waits for a stream to end and counts from the scheduled time, as
HTTP/1.1 does when late.

A server may close a keep-alive connection between responses (Hypercorn does after 1,000
requests, ``keep_alive_max_requests``; any server after ``Connection: close``): the client
opens a new connection and sends the request there, the latency including the reconnect,
as wrk does. A connection closed in the middle of a response is an error.

    python benchmarks/latency_client.py --port 8000 --proto h1 --rate 1000 --duration 5

prints one JSON object: requests, errors, achieved rate, p50/p90/p99/max in ms, and the
client's own CPU use.

``--rate 0`` is the closed loop (saturation, HTTP/1.1 only): every connection sends its next
request as soon as the previous answer is in, for ``--duration`` seconds, each latency
counted from the write. Its JSON adds how many requests each connection got answered
(``per_connection``: min, median, max, and ``fairness`` = min / max), which tells whether
every connection gets its turn (wrk cannot tell).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import h2.config
import h2.connection
import h2.events

clock = time.perf_counter


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.per_connection: list[int] = []  # the closed loop: answers each connection got
        self.reconnects = 0  # connections the server closed between responses


class ClosedBetweenResponses(Exception):
    """The server closed the connection before the first byte of the next response."""


async def read_response(reader: asyncio.StreamReader, deadline: float) -> tuple[bytes, bool]:
    """One HTTP/1.1 response with a Content-Length (or none): its status line, and whether
    the server said it closes the connection after it (``Connection: close``)."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), deadline - clock())
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise ClosedBetweenResponses from None
        raise
    status_line, _, rest = head.partition(b"\r\n")
    length = 0
    closes = False
    for line in rest.split(b"\r\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            closes = b"close" in value.lower()
    if length:
        await reader.readexactly(length)
    return status_line, closes


class H1Client:
    """One keep-alive connection at a time to ``host:port``, opened again when the server
    closes it between responses."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host, self.port = host, port
        self.request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reconnects = 0

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self.reader, self.writer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, *, start: float, stats: Stats, deadline: float) -> bool:
        """Write the request, read its response; count its latency from ``start`` when it
        is a 200 (an error otherwise). Whether it was a 200."""
        fresh = self.reader is None
        reader, writer = (
            (self.reader, self.writer)
            if self.reader is not None and self.writer is not None
            else await self._connect()
        )
        writer.write(self.request)
        try:
            status_line, closes = await read_response(reader, deadline)
        except ClosedBetweenResponses:
            if fresh:  # a new connection closed unanswered: the server refuses
                raise
            self.reconnects += 1
            reader, writer = await self._connect()
            writer.write(self.request)
            status_line, closes = await read_response(reader, deadline)
        if closes:
            self.close()
        if status_line.split(b" ", 2)[1] != b"200":
            stats.errors.append(status_line.decode(errors="replace"))
            return False
        stats.latencies.append(clock() - start)
        return True


async def h1_closed_loop(
    host: str, port: int, path: str, *, until: float, stats: Stats, deadline: float
) -> None:
    """Request after request on one connection until ``until``: saturation."""
    client = H1Client(host, port, path)
    answered = 0
    try:
        while clock() < until:
            if await client.exchange(start=clock(), stats=stats, deadline=deadline):
                answered += 1
    finally:
        stats.per_connection.append(answered)
        stats.reconnects += client.reconnects
        client.close()


async def h1_connection(
    host: str, port: int, path: str, *, times: list[float], stats: Stats, deadline: float
) -> None:
    client = H1Client(host, port, path)
    try:
        for scheduled in times:
            delay = scheduled - clock()
            if delay > 0:
                await asyncio.sleep(delay)
                start = clock()
            else:  # late because the previous response was: count from the schedule
                start = scheduled
            await client.exchange(start=start, stats=stats, deadline=deadline)
    finally:
        stats.reconnects += client.reconnects
        client.close()


async def h2_connection(
    host: str, port: int, path: str, *, times: list[float], stats: Stats, deadline: float
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    scheduled_at: dict[int, float] = {}
    status: dict[int, bytes] = {}
    done = asyncio.Event()
    stream_ended = asyncio.Event()
    sent_all = False

    async def read_loop() -> None:
        try:
            await read_responses()
        finally:  # wake a sender waiting for a free stream
            done.set()
            stream_ended.set()

    async def read_responses() -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                if scheduled_at:
                    stats.errors.append("connection closed with requests in flight")
                done.set()
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status[event.stream_id] = dict(event.headers).get(b":status", b"")
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    start = scheduled_at.pop(event.stream_id, None)
                    code = status.pop(event.stream_id, b"")
                    if start is not None:
                        if code == b"200":
                            stats.latencies.append(clock() - start)
                        else:
                            stats.errors.append(f"status {code!r}")
                elif isinstance(event, h2.events.StreamReset):
                    scheduled_at.pop(event.stream_id, None)
                    stats.errors.append(f"stream reset {event.error_code!r}")
                elif isinstance(event, h2.events.ConnectionTerminated):
                    stats.errors.append(f"GOAWAY {event.error_code!r}")
                    done.set()
                    return
            writer.write(conn.data_to_send())
            stream_ended.set()
            if sent_all and not scheduled_at:
                done.set()
                return

    reader_task = asyncio.create_task(read_loop())
    headers = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", f"{host}:{port}"),
        (":path", path),
    ]
    try:
        for scheduled in times:
            delay = scheduled - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            start = clock()
            while (
                conn.open_outbound_streams >= conn.remote_settings.max_concurrent_streams
                and not done.is_set()
            ):  # at the server's stream limit: wait, and count from the schedule
                stream_ended.clear()
                await stream_ended.wait()
                start = scheduled
            if done.is_set():
                break
            stream_id = conn.get_next_available_stream_id()
            scheduled_at[stream_id] = start
            conn.send_headers(stream_id, headers, end_stream=True)
            writer.write(conn.data_to_send())
        sent_all = True
        if not scheduled_at:
            done.set()
        await asyncio.wait_for(done.wait(), max(0.1, deadline - clock()))
    finally:
        reader_task.cancel()
        writer.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stats = Stats()
    start = clock() + 0.2
    deadline = start + args.duration + args.timeout
    tasks = []
    if args.rate <= 0:
        for _ in range(args.connections):
            until = start + args.duration
            tasks.append(
                h1_closed_loop(
                    args.host, args.port, args.path, until=until, stats=stats, deadline=deadline
                )
            )
    else:
        interval = args.connections / args.rate  # per connection
        per_connection = int(args.duration / interval)
        connection = h1_connection if args.proto == "h1" else h2_connection
        for i in range(args.connections):
            offset = start + i * interval / args.connections
            times = [offset + k * interval for k in range(per_connection)]
            tasks.append(
                connection(
                    args.host, args.port, args.path, times=times, stats=stats, deadline=deadline
                )
            )
    cpu0, t0 = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    cpu1, t1 = time.process_time(), time.perf_counter()
    for result in results:
        if isinstance(result, BaseException):
            stats.errors.append(f"{type(result).__name__}: {result}")
    values = sorted(stats.latencies)
    ms = [v * 1000 for v in values]
    counts = sorted(stats.per_connection)
    fairness: dict[str, Any] = {}
    if counts:
        fairness["per_connection"] = {
            "connections": len(counts),
            "min": counts[0],
            "median": counts[len(counts) // 2],
            "max": counts[-1],
            "fairness": round(counts[0] / counts[-1], 3) if counts[-1] else 0.0,
        }
    return {
        "proto": args.proto,
        "target_rate": args.rate,
        "requests": len(values),
        "achieved_rate": round(len(values) / args.duration, 1),
        "errors": len(stats.errors),
        "first_errors": stats.errors[:3],
        "reconnects": stats.reconnects,
        "p50_ms": round(percentile(ms, 0.50), 3),
        "p90_ms": round(percentile(ms, 0.90), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "max_ms": round(ms[-1], 3) if ms else float("nan"),
        "client_cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
        **fairness,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--proto", choices=["h1", "h2"], default="h1")
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="requests/s in total; 0: closed loop (h1)"
    )
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of sending")
    parser.add_argument("--timeout", type=float, default=10.0, help="grace after sending")
    args = parser.parse_args(argv)
    if args.rate <= 0 and args.proto != "h1":
        parser.error("the closed loop (--rate 0) is HTTP/1.1 only")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("load is sent to the loopback interface only")
    runner: Any = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        pass
    try:
        result: dict[str, Any] = runner(run(args))
    except (OSError, TimeoutError) as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(result))
    return 0 if result["requests"] and not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())

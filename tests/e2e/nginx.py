"""A real nginx (the Debian package) in front of tricorn, run by the test as its own process:
its own config file, prefix, pid file and logs in a temporary folder, listening on free
127.0.0.1 ports. Never the system's nginx service."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port

#: What nginx sends tricorn: the snippet of docs/deployment.md ("Behind nginx or HAProxy").
PROXY_HEADERS = """
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Port $server_port;
            proxy_set_header X-Forwarded-Prefix "";
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
"""

CONFIG = """
worker_processes 1;
user {user};
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ""; }}
    upstream tricorn {{
        server {upstream};
        keepalive 4;
    }}
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl;
        server_name www.example.test;
        ssl_certificate {certfile};
        ssl_certificate_key {keyfile};
        location / {{
            proxy_pass http://tricorn;{headers}
        }}
        location /api/ {{
            proxy_pass http://tricorn/;{headers}
            proxy_set_header X-Forwarded-Prefix /api;
        }}
    }}
}}
"""


def executable() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    folder: Path
    http_port: int
    https_port: int

    @property
    def error_log(self) -> str:
        path = self.folder / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _wait_for_port(port: int, process: subprocess.Popen[bytes], folder: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (folder / "error.log").read_text(errors="replace")
            raise AssertionError(f"nginx exited ({process.returncode}):\n{log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)  # polling for the port, bounded by the deadline
    raise AssertionError(f"nginx did not listen on {port} in 20 s")


@contextmanager
def nginx(
    folder: Path, upstream: str, tls: tuple[Path, Path], *, user: str = "nobody nogroup"
) -> Iterator[Nginx]:
    """nginx proxying to ``upstream`` (``127.0.0.1:PORT`` or ``unix:PATH``) on a plain and a
    TLS port, workers running as ``user``; stopped (SIGQUIT, then killed) afterwards."""
    path = executable()
    assert path is not None, "nginx is not installed (scripts/test.sh installs it)"
    folder.mkdir(parents=True, exist_ok=True)
    http_port, https_port = free_port(), free_port()
    config = CONFIG.format(
        dir=folder,
        user=user,
        upstream=upstream,
        http_port=http_port,
        https_port=https_port,
        certfile=tls[0],
        keyfile=tls[1],
        headers=PROXY_HEADERS.rstrip(),
    )
    (folder / "nginx.conf").write_text(config)
    command = [path, "-p", str(folder), "-e", str(folder / "error.log")]
    command += ["-c", str(folder / "nginx.conf"), "-g", "daemon off;"]
    with open(folder / "stderr.log", "wb") as stderr:
        process = subprocess.Popen(command, stdout=stderr, stderr=stderr)
    try:
        _wait_for_port(http_port, process, folder)
        _wait_for_port(https_port, process, folder)
        yield Nginx(process, folder, http_port, https_port)
    finally:
        if process.poll() is None:
            process.send_signal(3)  # SIGQUIT: graceful shutdown
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

"""deploy/nginx.conf run outside Docker: the same file, with 127.0.0.1 ports swapped in.

    with Nginx(upstream_port=gunicorn_port) as proxy:
        urllib.request.urlopen(f"http://127.0.0.1:{proxy.port}/healthz")

`python -m tests.support.nginx` renders the config and runs `nginx -t` on it (.ci/run does).
Only two lines change (the upstream server and the listen address), so what is tested is the
repository's file.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "nginx.conf"
UPSTREAM_LINE = "server web:8000;"
LISTEN_LINE = "listen 80;"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)), None
    )


def config_render(*, listen_port: int, upstream_port: int) -> str:
    text = CONFIG.read_text()
    for line in (UPSTREAM_LINE, LISTEN_LINE):
        if text.count(line) != 1:
            raise AssertionError(f"deploy/nginx.conf must contain {line!r} exactly once")
    return text.replace(UPSTREAM_LINE, f"server 127.0.0.1:{upstream_port};").replace(
        LISTEN_LINE, f"listen 127.0.0.1:{listen_port};"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Nginx:
    """nginx with the rendered config in a temporary prefix, while used as a context manager."""

    def __init__(self, *, upstream_port: int, port: int | None = None) -> None:
        self.binary = nginx_binary()
        if self.binary is None:
            raise FileNotFoundError("nginx is not installed (apt-get install nginx-light)")
        self.port = port or _free_port()
        self.prefix = Path(tempfile.mkdtemp(prefix="chatmon-nginx-"))
        # Workers drop to "nobody" when started as root: they must write the body spool files.
        self.prefix.chmod(0o777)
        self.config = self.prefix / "nginx.conf"
        self.config.write_text(config_render(listen_port=self.port, upstream_port=upstream_port))
        self.process: subprocess.Popen | None = None

    def command(self, *extra: str) -> list[str]:
        return [self.binary, "-p", str(self.prefix), "-c", str(self.config),
                "-g", f"pid {self.prefix / 'nginx.pid'};", *extra]

    def check(self) -> subprocess.CompletedProcess:
        return subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)

    def __enter__(self) -> Self:
        self.process = subprocess.Popen(
            self.command("-g", "daemon off;"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("nginx did not start listening")

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        shutil.rmtree(self.prefix, ignore_errors=True)


if __name__ == "__main__":
    nginx = Nginx(upstream_port=8000, port=8080)
    result = nginx.check()
    shutil.rmtree(nginx.prefix, ignore_errors=True)
    sys.stdout.write(result.stdout + result.stderr)
    sys.exit(result.returncode)

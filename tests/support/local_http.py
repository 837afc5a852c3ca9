"""The lifecycle the local test servers share: a free loopback port, served from a thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The stdlib default backlog (5) drops connections when many clients connect at once
    # (a benchmark's 32 workers), and the kernel's SYN retry adds seconds to those requests.
    request_queue_size = 256


class LocalHTTPServer:
    """Serves `handler_class` on 127.0.0.1 (a free port) while used as a context manager."""

    def __init__(self, handler_class: type[BaseHTTPRequestHandler]) -> None:
        self._server = _Server(("127.0.0.1", 0), handler_class)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

"""The shipped proxy (deploy/nginx.conf) in front of a real gunicorn, on 127.0.0.1 ports.

1. Slow clients trickling a body are held by nginx, not by gunicorn's one sync worker:
   /healthz answers while they are still connected.
2. nginx replaces a client-sent X-Forwarded-For, so with TRUSTED_PROXY_COUNT=1 the feedback
   rate limit sees the real peer address, whatever the client claims.
"""

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.support.nginx import Nginx, nginx_binary

pytestmark = [pytest.mark.services, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CLIENT_TIMEOUT = 30  # generous: only "does it answer at all while the slow clients hang on"
SLOW_CLIENTS = 6


def _require_nginx() -> None:
    if nginx_binary() is None:
        if IN_CI:
            pytest.fail("nginx is missing; CI installs it (apt-get install nginx-light)")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """nginx → gunicorn (one sync worker, so a single held worker would block everything)."""
    _require_nginx()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "chatmon.settings", "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(64),
        "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('db') / 'chatmon.sqlite3'}", "REDIS_URL": "",
        "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "0", "TRUSTED_PROXY_COUNT": "1",
        "FEEDBACK_RATE_LIMIT_IP": "3/min", "FEEDBACK_RATE_LIMIT_TOKEN": "1000/min", "LOG_LEVEL": "WARNING",
        "STATICFILES_STORAGE": "django.contrib.staticfiles.storage.StaticFilesStorage",
    })
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "chatmon.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--timeout", "120", "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/healthz")
        with Nginx(upstream_port=port) as proxy:
            yield proxy
    finally:
        gunicorn.terminate()
        gunicorn.wait(20)


def test_the_repository_config_passes_nginx_t(stack):
    result = stack.check()
    assert result.returncode == 0, result.stderr


def _slow_client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)
    sock.sendall(
        b"POST /api/v1/ingest/turns HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer cm_x_y\r\nContent-Length: 100000\r\n\r\n{\"conversation_id\": "
    )
    return sock


def _still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""  # data would mean an early answer: not expected
    except BlockingIOError:
        return True  # nothing to read and not closed
    finally:
        sock.setblocking(True)


def test_slow_clients_do_not_block_healthz(stack):
    clients = [_slow_client(stack.port) for _ in range(SLOW_CLIENTS)]
    try:
        for client in clients:
            client.sendall(b'"c')  # trickling: a byte or two, the rest never comes in time
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.port}/healthz", timeout=CLIENT_TIMEOUT) as response:
            assert response.status == 200
            assert json.loads(response.read())["database"]["status"] == "ok"
        # The slow clients were still connected while /healthz answered.
        assert all(_still_open(client) for client in clients)
    finally:
        for client in clients:
            client.close()


def _post_feedback(port: int, forwarded_for: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/feedback",
        data=json.dumps({"token": secrets.token_urlsafe(16), "rating": "up"}).encode(),
        headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded_for}, method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_client_sent_x_forwarded_for_does_not_change_the_rate_limited_ip(stack):
    # A new random address per request, as an attacker dodging a per-IP limit of 3/min would send.
    statuses = [_post_feedback(stack.port, f"203.0.113.{index}, 198.51.100.{index}") for index in range(1, 8)]
    assert 429 in statuses, statuses
    assert statuses.index(429) <= 3, statuses  # the fourth request from this peer is over the limit

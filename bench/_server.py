"""Shared plumbing for the benchmarks: a fresh PostgreSQL database, gunicorn and Celery processes,
load from threads."""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# DEBUG is off in the benchmarks, so chatmon.E001 wants a real key: one per run, shared by every
# process the run starts (web and workers check each other's tokens).
BENCH_SECRET_KEY = os.environ.get("SECRET_KEY") or secrets.token_urlsafe(64)


def database_prepare(url: str, reset: bool) -> None:
    """Create the database named in `url` (a postgres:// URL) if missing; drop it first on reset."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and reset:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def database_recreate(url: str) -> None:
    database_prepare(url, reset=True)


WRK_DONE = """
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors_status=%d p50=%.3f p90=%.3f p99=%.3f rps=%.1f\\n",
    summary.requests, summary.errors.status, latency:percentile(50)/1000, latency:percentile(90)/1000,
    latency:percentile(99)/1000, summary.requests / (summary.duration / 1e6)))
end
"""

# Bodies are read from one file, each behind its length in 4 bytes (big-endian), and sent in
# turn: a body is sent once unless the run outlasts them (then `wrapped` > 0 and they replay).
WRK_BODIES = """
local file = io.open("{file}", "rb")
local data = file:read("*a")
file:close()
local bodies, pos = {}, 1
while pos <= #data do
  local b1, b2, b3, b4 = data:byte(pos, pos + 3)
  local n = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
  bodies[#bodies + 1] = data:sub(pos + 4, pos + 3 + n)
  pos = pos + 4 + n
end
local counter = 0
local headers = {["Content-Type"] = "{content_type}", ["Authorization"] = "Bearer {key}"}
request = function()
  counter = counter + 1
  if counter > #bodies then
    counter = 1
    io.stderr:write("WRAPPED\\n")
  end
  return wrk.format("POST", "{path}", headers, bodies[counter])
end
"""


def wrk_run(script: str, *, port: int, seconds: float, connections: int) -> dict[str, float]:
    """Run wrk (one thread, `connections` keep-alive connections) with a Lua `script` that has
    no `done` of its own; requests, non-2xx/3xx answers, latency percentiles (ms) and req/s."""
    import re
    import tempfile

    path = Path(tempfile.mkdtemp()) / "load.lua"
    path.write_text(script + WRK_DONE)
    run = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{round(seconds)}s", "-s", str(path),
                          f"http://127.0.0.1:{port}"], capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"wrk failed:\n{run.stdout}{run.stderr}")
    found = re.search(r"RESULT requests=(\d+) errors_status=(\d+) p50=([\d.]+) p90=([\d.]+) p99=([\d.]+) "
                      r"rps=([\d.]+)", run.stdout)
    if not found:
        raise SystemExit(f"could not parse wrk output:\n{run.stdout}{run.stderr}")
    requests, errors, p50, p90, p99, rps = found.groups()
    return {"requests": int(requests), "errors": int(errors), "p50_ms": float(p50), "p90_ms": float(p90),
            "p99_ms": float(p99), "rps": float(rps), "client": "wrk", "wrapped": "WRAPPED" in run.stderr}


def post_bodies_wrk(port: int, key: str, bodies: list[bytes], *, path: str, content_type: str, seconds: float,
                    connections: int) -> dict[str, float]:
    """`bodies` POSTed by wrk for `seconds` (a C client: the load costs the two cores little,
    unlike Python threads); the figures of `wrk_run`."""
    import tempfile

    file = Path(tempfile.mkdtemp()) / "bodies.bin"
    file.write_bytes(b"".join(len(body).to_bytes(4, "big") + body for body in bodies))
    script = (WRK_BODIES.replace("{file}", str(file)).replace("{content_type}", content_type)
              .replace("{key}", key).replace("{path}", path))
    return wrk_run(script, port=port, seconds=seconds, connections=connections)


def post_bodies(port: int, key: str, bodies: list[bytes], *, clients: int, path: str, content_type: str,
                ok_status: int) -> tuple[float, list[float]]:
    """POST every body from `clients` keep-alive connections; (elapsed seconds, per-request seconds)."""
    queue = list(bodies)
    lock = threading.Lock()
    durations: list[float] = []
    errors: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        headers = {"Content-Type": content_type, "Authorization": f"Bearer {key}"}
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            started = time.perf_counter()
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            payload = response.read()
            durations.append(time.perf_counter() - started)
            if response.status != ok_status or b"rejected" in payload or b'"status": 400' in payload:
                errors.append(f"{response.status}: {payload[:200]!r}")
        conn.close()

    elapsed = threads_run(clients, lambda _index: client())
    if errors:
        raise SystemExit(f"{path} errors: {errors[:3]}")
    return elapsed, sorted(durations)



def bench_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "chatmon.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DEBUG": "0",
        "SECRET_KEY": BENCH_SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
        "INGEST_RATE_LIMIT": "100000000/min",
        "STATICFILES_STORAGE": "django.contrib.staticfiles.storage.StaticFilesStorage",
    })
    shared_tiktoken = ROOT.parent / "shared" / "data" / "tiktoken"
    if shared_tiktoken.is_dir():
        env.setdefault("TIKTOKEN_ENCODINGS_DIR", str(shared_tiktoken))
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout


def django_setup(env: dict[str, str]) -> None:
    """Configure Django in this process with the benchmark's environment."""
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def threads_run(count: int, work: Callable[[int], None]) -> float:
    """Run work(0) … work(count - 1) in threads at once; seconds until the last one returned."""
    threads = [threading.Thread(target=work, args=(index,)) for index in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def nearest_rank(ordered: list[float], fraction: float) -> float:
    """The value at `fraction` (0–1) of already sorted, non-empty `ordered`."""
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one live process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid` and its children (one level: gunicorn's master and workers)."""
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
    return process_cpu_seconds(pid) + sum(process_cpu_seconds(c) for c in children)


def postgres_backend_cpu_seconds(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend connected to `database` (same host), by pid."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [database])
        return {pid: process_cpu_seconds(pid) for (pid,) in cursor.fetchall()}


def copy_limit_rows_per_s(database_url: str, rows: int = 100_000) -> float | None:
    """`../shared/tools/copy_limit.py` (PostgreSQL COPY of turn-shaped rows) run now; None if absent."""
    import json

    tool = ROOT.parent / "shared" / "tools" / "copy_limit.py"
    if not tool.exists():
        return None
    parts = urlsplit(database_url)
    dsn = f"host={parts.hostname} port={parts.port or 5432} user={parts.username} dbname={parts.path.lstrip('/')}"
    out = subprocess.run([PYTHON, str(tool), "--dsn", dsn, "--rows", str(rows)], capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["copy_rows_per_s"])


class Background:
    """A command running in its own process group while used as a context manager."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.command, self.env = command, env
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Self:
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, start_new_session=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


class CeleryWorker(Background):
    def __init__(self, env: dict[str, str], *, queues: str, concurrency: int = 1) -> None:
        super().__init__([PYTHON, "-m", "celery", "-A", "chatmon", "worker", "-Q", queues, "-c", str(concurrency),
                          "-l", "WARNING", "--without-gossip", "--without-mingle"], env)


class Gunicorn(Background):
    """gunicorn serving chatmon; entering waits until /healthz answers 200."""

    def __init__(self, env: dict[str, str], *, port: int, workers: int, threads: int = 1,
                 worker_class: str = "") -> None:
        self.port = port
        super().__init__([PYTHON, "-m", "gunicorn", "chatmon.wsgi:application", "--bind", f"127.0.0.1:{port}",
                          "--workers", str(workers), "--threads", str(threads), "--keep-alive", "30",
                          *(["--worker-class", worker_class] if worker_class else []),
                          "--log-level", "warning", "--timeout", "120"], env)

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system) used so far by gunicorn and its live workers."""
        assert self.process is not None
        return process_tree_cpu_seconds(self.process.pid)

    def __enter__(self) -> Self:
        super().__enter__()
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.__exit__()
        raise RuntimeError("gunicorn did not come up")

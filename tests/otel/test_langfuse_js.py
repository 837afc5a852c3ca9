"""The Langfuse JS/TS SDK (current major, the versions pinned in
tests/otel/clients/langfuse_js/package.json) as a real Node client: `npm ci` installs it into that
folder once (node_modules/ is gitignored and reused while package-lock.json is unchanged), then
bot.mjs runs as a subprocess with only LANGFUSE_BASE_URL, LANGFUSE_PUBLIC_KEY and
LANGFUSE_SECRET_KEY (and LANGFUSE_RELEASE) set. Without node, npm, the registry or nginx the test
skips locally and fails under CI=true.

The bot talks to the shipped proxy (deploy/nginx.conf) in front of the live test server, as in
production: OpenTelemetry JS streams every OTLP body chunked, without a Content-Length, which
nginx buffers and passes on with one (Django's test server cannot decode chunks itself).
"""

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from apps.conversations.models import Conversation, LLMCall, Step, Turn
from apps.feedback.models import Feedback
from apps.privacy.hashing import end_user_hash
from apps.scores.models import Score
from tests.otel.test_langfuse import _public_key
from tests.support.nginx import Nginx, nginx_binary

CLIENT = Path(__file__).parent / "clients" / "langfuse_js"
# Written after a successful `npm ci`: the lock file's hash, so a changed lock reinstalls.
INSTALLED_STAMP = CLIENT / "node_modules" / ".chatmon-installed-lock"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"Langfuse JS SDK: {reason}")
    pytest.skip(f"Langfuse JS SDK: {reason}")


@pytest.fixture(scope="session")
def langfuse_js_node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _unavailable("node and npm are needed on PATH")
    lock = hashlib.sha256((CLIENT / "package-lock.json").read_bytes()).hexdigest()
    if INSTALLED_STAMP.exists() and INSTALLED_STAMP.read_text() == lock:
        return node
    try:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CLIENT,
            check=True,
            capture_output=True,
            timeout=600,
        )
    except subprocess.CalledProcessError as exc:
        _unavailable(f"npm ci failed: {exc.stderr.decode(errors='replace')[-800:]}")
    except subprocess.TimeoutExpired:
        _unavailable("npm ci timed out")
    INSTALLED_STAMP.write_text(lock)
    return node


@pytest.fixture
def chatmon_behind_nginx(live_server):
    """The base URL of deploy/nginx.conf proxying to the live server."""
    if nginx_binary() is None:
        _unavailable("nginx is not installed (apt-get install nginx-light)")
    with Nginx(upstream_port=urlsplit(live_server.url).port) as proxy:
        yield f"http://127.0.0.1:{proxy.port}"


def _run_bot(node: str, base_url: str, api_key: str) -> dict:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANGFUSE_BASE_URL": base_url,
        "LANGFUSE_PUBLIC_KEY": _public_key(api_key),
        "LANGFUSE_SECRET_KEY": api_key,
        "LANGFUSE_RELEASE": "2026.06.2",
    }
    done = subprocess.run(
        [node, "bot.mjs"], cwd=CLIENT, env=env, capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


@pytest.mark.django_db(transaction=True)
def test_langfuse_js_sdk(langfuse_js_node, chatmon_behind_nginx, chatbot, api_key):
    report = _run_bot(langfuse_js_node, chatmon_behind_nginx, api_key)
    order_trace, hours_trace = report["order"]["traceId"], report["hours"]["traceId"]

    conversation = Conversation.objects.get(chatbot=chatbot, external_id="js-session")
    assert conversation.end_user_hash == end_user_hash(chatbot_id=chatbot.pk, user_id="customer-js")
    assert conversation.turn_count == 2
    order, hours = Turn.objects.filter(conversation=conversation).order_by("sequence")
    assert order.external_id.startswith(order_trace + ":")
    assert hours.external_id.startswith(hours_trace + ":")
    assert (order.user_message, order.bot_response) == (
        "Where is my order 50231?",
        "Order 50231 shipped yesterday.",
    )
    assert (hours.user_message, hours.bot_response) == (
        "When do you close today?",
        "We are open until 8 pm.",
    )
    assert order.end_user_hash == conversation.end_user_hash
    assert order.metadata["otel"]["release"] == "2026.06.2"
    assert order.metadata["otel"]["tags"] == ["web", "js"]

    [order_call] = LLMCall.objects.filter(turn=order)
    assert (order_call.model, order_call.input_tokens, order_call.output_tokens) == (
        "gpt-4o-mini",
        18,
        5,
    )
    assert order_call.output_text == "Order 50231 shipped yesterday."
    [hours_call] = LLMCall.objects.filter(turn=hours)
    assert (hours_call.model, hours_call.input_tokens, hours_call.output_tokens) == (
        "gpt-4o-mini",
        11,
        6,
    )
    order.refresh_from_db()
    assert order.total_tokens == 23 and order.model == "gpt-4o-mini"
    step = Step.objects.get(turn=order)
    assert (step.name, step.kind, step.output_text) == (
        "order-lookup",
        "tool",
        '{"status":"shipped"}',
    )

    assert [
        (f.turn_id, f.rating, f.comment) for f in Feedback.objects.order_by("turn__sequence")
    ] == [
        (order.pk, "down", "Too slow"),
        (hours.pk, "up", ""),
    ]
    scores = {s.name: s for s in Score.objects.filter(chatbot=chatbot)}
    assert set(scores) == {"helpfulness", "tone"}
    assert (scores["helpfulness"].turn_id, scores["helpfulness"].value) == (order.pk, 0.5)
    assert scores["helpfulness"].source == "langfuse"
    assert (scores["tone"].turn_id, scores["tone"].data_type) == (hours.pk, "categorical")

import os
import secrets
import subprocess
import sys
from pathlib import Path

from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]


def test_admin_login_is_locked_after_repeated_failures(client, alice, settings):
    url = reverse("admin:login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post(url, {"username": "alice", "password": "wrong"})
        assert response.status_code == 200  # the form again, with an error
    assert client.post(url, {"username": "alice", "password": "wrong"}).status_code == 429
    # Locked: even the right password is refused now.
    locked = client.post(url, {"username": "alice", "password": "password"})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_behind_the_proxy_a_lockout_holds_one_client_not_everyone(client, alice, settings):
    # Behind nginx every request's REMOTE_ADDR is nginx's; the client is in X-Forwarded-For.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    url = reverse("admin:login")
    attacker = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(url, {"username": "alice", "password": "wrong"}, **attacker)
    assert client.post(url, {"username": "alice", "password": "password"}, **attacker).status_code == 429
    # A spoofed left-most address does not get the attacker out of the lockout …
    spoofed = {**attacker, "HTTP_X_FORWARDED_FOR": "198.51.100.1, 203.0.113.9"}
    assert client.post(url, {"username": "alice", "password": "password"}, **spoofed).status_code == 429
    # … and alice, from her own address through the same proxy, still logs in.
    alice_there = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "192.0.2.44"}
    response = client.post(url, {"username": "alice", "password": "password", "next": "/admin/"}, **alice_there)
    assert response.status_code == 302 and "_auth_user_id" in client.session


def test_a_correct_login_before_the_limit_works(client, alice, settings):
    url = reverse("admin:login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post(url, {"username": "alice", "password": "wrong"})
    response = client.post(url, {"username": "alice", "password": "password", "next": "/admin/"})
    assert response.status_code == 302 and "_auth_user_id" in client.session


def test_chatmon_pages_send_a_content_security_policy(admin_client):
    response = admin_client.get("/admin/")
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"


def test_check_deploy_passes_with_production_settings():
    """Every deployment check (they are all tagged "security") passes at WARNING level.

    The untagged run also reports drf-spectacular's W001 enum-naming notes about the schema;
    those are not deployment issues and are left to SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].
    """
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "chatmon.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": "chatmon.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://chatmon.example.com",
    })
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--tag", "security", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout

"""The page that shows a new API key once: the copy buttons work in real Chromium (a static
script under the CSP) and the curl line sends a turn with the key."""

import re
import subprocess

import pytest

from apps.chatbots.models import ApiKey
from apps.conversations.models import Turn
from tests.support.browser import browser_login

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_new_key_page_copies_the_key_and_the_curl_line(live_server, browser_page, alice, chatbot):
    page = browser_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    browser_login(page, live_server, alice)
    page.goto(f"{live_server.url}/admin/chatbots/apikey/add/")
    page.select_option("#id_chatbot", str(chatbot.pk))
    page.fill("#id_name", "production")
    with page.expect_navigation():
        page.click("input[name=_save]")
    raw = page.input_value("#new-api-key")
    assert ApiKey.objects.get(name="production").key_hash == ApiKey.hash_key(raw)

    page.click("#copy-api-key")
    expect(page.locator("#copy-api-key")).to_have_text("Copied")  # no wait_for_function: the CSP forbids eval
    assert page.evaluate("navigator.clipboard.readText()") == raw

    page.click("#copy-curl")
    expect(page.locator("#copy-curl")).to_have_text("Copied")
    curl = page.evaluate("navigator.clipboard.readText()")
    assert curl.startswith(f"curl -X POST {live_server.url}/api/v1/ingest/turns") and f"Bearer {raw}" in curl
    assert page.errors == []

    # The copied line works as it is.
    if subprocess.run(["which", "curl"], capture_output=True).returncode == 0:
        result = subprocess.run(["bash", "-c", curl + " -s -o /dev/null -w '%{http_code}'"], capture_output=True, text=True)
        assert result.stdout == "201", result
        assert Turn.objects.filter(chatbot=chatbot, external_id="curl-test-1-1").exists()
    else:
        assert re.search(r"-d '\{.*\}'", curl, re.S)

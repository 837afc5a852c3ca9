"""/api/docs/ in real Chromium under the project's CSP: Swagger UI starts (its start-up script
is a same-origin file, not inline) and renders the operations, with nothing in the console."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_api_docs_render_the_operations_under_the_csp(live_server, browser_page):
    page = browser_page
    page.set_viewport_size({"width": 1440, "height": 900})
    blocked = []
    page.on("console", lambda msg: blocked.append(msg.text) if "Content Security Policy" in msg.text else None)
    response = page.goto(f"{live_server.url}/api/docs/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    page.wait_for_selector(".opblock")
    ingest = page.locator('.opblock-post:has([data-path="/api/v1/ingest/turns"])')
    assert ingest.count() == 1
    assert page.locator(".opblock").count() > 10
    assert page.locator(".info .title").inner_text().startswith("chatmon API")
    # An operation opens (Swagger's own scripts work, not only the first paint).
    ingest.locator(".opblock-summary").click()
    page.wait_for_selector('.opblock-post.is-open .opblock-body')
    assert blocked == [] and page.errors == []


def test_favicon_everywhere(live_server, browser_page, client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"].endswith("chatmon/favicon.svg")
    page = browser_page
    failed = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    page.goto(f"{live_server.url}/admin/login/")
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert icon.endswith("chatmon/favicon.svg")
    assert page.request.get(f"{live_server.url}{icon}").headers["content-type"].startswith("image/svg+xml")
    assert page.request.get(f"{live_server.url}/favicon.ico").ok  # the redirect lands on the icon
    assert failed == [] and page.errors == []

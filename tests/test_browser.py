"""GraphiQL in a real browser, as a department's developer uses it, offline.

Debian's Chromium (``/usr/bin/chromium``, driven by Playwright for Python;
no browser is downloaded) opens the demo gateway's GraphiQL, served on a
loopback port by uvicorn in this process, over the test demo data. Every
request whose host is not 127.0.0.1 is aborted and recorded (and Chromium's
own resolver knows no other host): none may be attempted, so the page works
on a network without internet access. The developer enters a token and a
purpose once, sees the schema in the documentation explorer (``Entity``),
types a query with completion (Ctrl+Space, a field picked from the list),
runs it and reads the data in the result pane; then, as a bank, runs the
saved view ``BankFinancingProfile`` by its ``documentId`` through the page's
"Run saved view" control (GraphiQL itself only sends query text). Every
request, GraphiQL's schema introspection included, carries the token and
the purpose.

GraphiQL's files come from the npm registry once (``gateway.graphiql``) into
``.cache/graphiql-assets`` beside ``.venv`` (or ``$TEST_GRAPHIQL_ASSETS``).
Screenshots of each step go to ``tests/.artifacts/browser/`` (git-ignored).
Without Chromium the test is skipped, except under CI (``CI`` set), where it
must run (``.ci/run`` installs Chromium).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from demo.generate import demo_operations
from gateway.app import create_app
from gateway.graphiql import AssetsError, assets_problem, fetch_assets
from tests.connectors.http_server import LiveServer
from tests.gateway_fixtures import demo_token

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("TEST_CHROMIUM", "/usr/bin/chromium"))
ASSETS = Path(os.environ.get("TEST_GRAPHIQL_ASSETS",
                             ROOT / ".cache" / "graphiql-assets"))
SCREENSHOTS = ROOT / "tests" / ".artifacts" / "browser"
TIMEOUT_MS = 30_000
QUERY_TYPED = '{ searchEntities(name: "有限公司", first: 2) { entities { uscc registration { na'
QUERY_COMPLETED = '{ searchEntities(name: "有限公司", first: 2) { entities { uscc registration { name}}}}'


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser test: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def playwright():
    if not CHROMIUM.exists():
        _unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (the project's `test` extra has it)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def graphiql_assets() -> Path:
    """GraphiQL's files, fetched from the npm registry on first use."""
    if assets_problem(ASSETS) is not None:
        try:
            fetch_assets(ASSETS)
        except AssetsError as exc:
            _unavailable(f"GraphiQL's files cannot be fetched into {ASSETS}: {exc}")
    return ASSETS


@pytest.fixture(scope="module")
def gateway(generated_demo_settings, graphiql_assets):
    """The demo gateway as generated (its banks persisted-only), with GraphiQL's
    files, on a free loopback port."""
    settings = dataclasses.replace(generated_demo_settings, graphiql_assets=str(graphiql_assets))
    with LiveServer(create_app(settings), lifespan="on") as server:
        yield settings, server.url


class Browsing:
    """One offline browser page and what it did."""

    def __init__(self, playwright, base_url: str) -> None:
        self.browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
        self.context = self.browser.new_context(viewport={"width": 1400, "height": 900},
                                                service_workers="block")
        self.outside: list[str] = []  # requests beyond loopback (aborted)
        self.page_errors: list[str] = []
        self.requests: list = []
        self.responses: list = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.on("response", lambda response: self.responses.append(response))
        # Content-Security-Policy violations (the page allows its own origin only).
        self.page.add_init_script(
            "window.cspViolations = []; document.addEventListener('securitypolicyviolation',"
            " e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));")
        self.base_url = base_url
        self.shots = 0

    def _route(self, route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.shots += 1
        self.page.screenshot(path=str(SCREENSHOTS / f"{self.shots:02d}-{name}.png"))

    def editor_text(self, selector: str) -> str:
        return self.page.evaluate(
            "selector => document.querySelector(selector).CodeMirror.getValue()", selector)

    def graphql_posts(self) -> list:
        return [r for r in self.requests
                if r.method == "POST" and urlsplit(r.url).path == "/graphql"]

    def close(self) -> None:
        self.context.close()
        self.browser.close()


@pytest.fixture
def browsing(playwright, gateway):
    browsing = Browsing(playwright, gateway[1])
    try:
        yield browsing
    finally:
        browsing.close()


# The headers GraphiQL keeps in the browser (its active tab's), as the page reads them back.
STORED_HEADERS = ("(() => { const s = JSON.parse(localStorage.getItem('graphiql:tabState'));"
                  " return s && s.tabs[s.activeTabIndex].headers; })()")


def use_credentials(browsing: Browsing, token: str, purpose: str) -> None:
    page = browsing.page
    page.fill("#cg-token", token)
    page.select_option("#cg-purpose", purpose)
    page.click("#cg-use")


def test_graphiql_offline_with_token_purpose_completion_and_a_saved_view(browsing, gateway):
    from playwright.sync_api import expect

    settings, base_url = gateway
    page = browsing.page
    page.goto(f"{base_url}/graphql")
    expect(page.locator("#cg-token")).to_be_visible()
    browsing.screenshot("token-form")

    # The token and the purpose, once: GraphiQL opens and fetches the schema with them.
    use_credentials(browsing, demo_token(settings, "hz-market-app"), "SUPERVISION")
    expect(page.locator(".graphiql-container")).to_be_visible()
    expect(page.locator("#cg-status")).to_contain_text("hz-market-app for SUPERVISION")
    headers_editor = browsing.editor_text(".graphiql-editor-tool .graphiql-editor:not(.hidden) "
                                          ".CodeMirror")
    assert json.loads(headers_editor)["X-Purpose-Of-Use"] == "SUPERVISION"

    # The schema, in the documentation explorer.
    page.click('button[aria-label="Show Documentation Explorer"]')
    explorer = page.locator(".graphiql-doc-explorer")
    entity = explorer.get_by_text("Entity", exact=True).first
    expect(entity).to_be_visible()
    entity.click()
    expect(explorer.locator(".graphiql-doc-explorer-title")).to_have_text("Entity")
    expect(explorer.get_by_text("registration", exact=True).first).to_be_visible()
    browsing.screenshot("docs-entity")

    # A query typed with completion: Ctrl+Space, then a field picked from the list.
    page.locator(".graphiql-query-editor .CodeMirror").click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type(QUERY_TYPED)
    page.keyboard.press("Control+Space")
    hints = page.locator("li.CodeMirror-hint")
    expect(hints.first).to_be_visible()
    assert "legalRepresentative" in hints.all_inner_texts()  # the schema's Registration fields
    browsing.screenshot("completion")
    hints.get_by_text("name", exact=True).click()
    assert browsing.editor_text(".graphiql-query-editor .CodeMirror") == QUERY_COMPLETED

    # Run it: the data is in the result pane.
    page.click(".graphiql-execute-button")
    expect(page.locator(".graphiql-response")).to_contain_text("searchEntities")
    result = json.loads(browsing.editor_text(".graphiql-response .CodeMirror"))
    entities = result["data"]["searchEntities"]["entities"]
    assert len(entities) == 2 and all("有限公司" in e["registration"]["name"] for e in entities)
    browsing.screenshot("query-result")

    # A bank's saved view, by its documentId, with the Variables editor's variables.
    (profile,) = [o for o in demo_operations() if o.name == "BankFinancingProfile"]
    use_credentials(browsing, demo_token(settings, "bank-icbc-huizhou"), "FINANCING")
    expect(page.locator("#cg-status")).to_contain_text("bank-icbc-huizhou for FINANCING")
    page.click('button[data-name="variables"]')
    page.locator(".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror").click()
    page.keyboard.type(f'{{"uscc": "{entities[0]["uscc"]}')
    page.fill("#cg-document-id", profile.document_id)
    page.click("#cg-run-saved-view")
    expect(page.locator(".graphiql-response")).to_contain_text("financingProfile")
    expect(page.locator("#cg-status")).to_contain_text("answer is in the result pane")
    answer = json.loads(browsing.editor_text(".graphiql-response .CodeMirror"))
    assert answer["data"]["financingProfile"]["uscc"] == entities[0]["uscc"]
    assert answer["data"]["financingProfile"]["identity"]["name"] == (
        entities[0]["registration"]["name"])
    browsing.screenshot("saved-view")
    assert page.locator(".graphiql-tab").count() == 0  # still the one tab: no tab per token

    # What went over the wire: nothing beyond loopback, every file from the gateway,
    # every GraphQL request (the schema's first) with the token and the purpose.
    assert browsing.outside == []
    assert {urlsplit(r.url).hostname for r in browsing.requests} == {"127.0.0.1"}
    files = [r for r in browsing.responses if urlsplit(r.url).path.startswith("/graphql/assets/")]
    assert len(files) == 6 and all(r.status == 200 for r in files)
    posts = browsing.graphql_posts()
    assert "IntrospectionQuery" in posts[0].post_data
    for request in posts:
        assert request.headers["authorization"].startswith("Bearer ey")
        assert request.headers["x-purpose-of-use"] in ("SUPERVISION", "FINANCING")
    bodies = [json.loads(r.post_data) for r in posts]
    assert {"documentId": profile.document_id, "variables": {"uscc": entities[0]["uscc"]}} in bodies
    statuses = [r.status for r in browsing.responses if urlsplit(r.url).path == "/graphql"
                and r.request.method == "POST"]
    assert 401 not in statuses
    assert page.evaluate("window.cspViolations") == []
    assert browsing.page_errors == []


def test_the_stored_headers_open_graphiql_without_asking_again(browsing, gateway):
    """The token and purpose persist in localStorage, as GraphiQL keeps its
    headers: a reload goes straight to GraphiQL, and its first request (the
    schema) carries them. "Forget" removes them."""
    from playwright.sync_api import expect

    settings, base_url = gateway
    page = browsing.page
    page.goto(f"{base_url}/graphql")
    use_credentials(browsing, demo_token(settings, "hz-credit-office"), "INCENTIVE_REVIEW")
    expect(page.locator(".graphiql-container")).to_be_visible()
    stored = json.loads(page.evaluate(STORED_HEADERS))
    assert stored["X-Purpose-Of-Use"] == "INCENTIVE_REVIEW"

    before = len(browsing.graphql_posts())
    page.reload()
    expect(page.locator(".graphiql-container")).to_be_visible()
    expect(page.locator("#cg-status")).to_contain_text("hz-credit-office for INCENTIVE_REVIEW")
    page.click('button[aria-label="Show Documentation Explorer"]')
    expect(page.locator(".graphiql-doc-explorer").get_by_text("Entity", exact=True).first
           ).to_be_visible()
    first = browsing.graphql_posts()[before]
    assert "IntrospectionQuery" in first.post_data
    assert first.headers["x-purpose-of-use"] == "INCENTIVE_REVIEW"
    assert first.headers["authorization"] == stored["Authorization"]

    page.click("#cg-forget")
    expect(page.locator("#cg-status")).to_contain_text("No token yet")
    assert page.evaluate("localStorage.getItem('graphiql:headers')") is None
    assert "Authorization" not in (page.evaluate(STORED_HEADERS) or "")
    assert "Bearer" not in (page.evaluate("localStorage.getItem('graphiql:tabState')") or "")
    assert page.locator(".graphiql-container").count() == 0
    assert browsing.outside == [] and browsing.page_errors == []

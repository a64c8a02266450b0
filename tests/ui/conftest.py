"""Browser-test fixtures: Debian's Chromium through Playwright, against real servers.

``live`` (one per test process): the Wazzup24 sandbox over real HTTP on 127.0.0.1, and the helpdesk
under gunicorn (file SQLite, migrated by ``helpdesk-stub db upgrade``) talking to it, with its
webhook registered at the sandbox by ``helpdesk-stub wazzup24 set-webhook``. The sandbox sends no
statuses by itself here (tests post each one), so what a test waits for never races a timer.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
AGENT, PASSWORD = "alice", "correct horse battery"
SANDBOX_KEY = "ui-sandbox-key-0123456789abcdef"
WEBHOOK_SECRET = "ui-webhook-secret-0123456789"
NEVER = 3600.0  # seconds: the sandbox's own status timers never fire during a test
WAIT_MS = 15_000  # the longest a UI expectation waits (polling runs every 2 s)


def _clean_env(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELPDESK_", "WAZZUP24_"))}
    env.update(extra)
    return env


def _cli(cwd, env: dict, *args, stdin: str | None = None) -> str:
    result = subprocess.run([sys.executable, "-m", "host_stub", *args], cwd=cwd, env=_clean_env(env), input=stdin,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"helpdesk-stub {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def playwright_browser():
    """Chromium driven by Playwright (sync API); skipped with the reason when either is missing."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need `pip install playwright`")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def live(tmp_path_factory):
    """The sandbox and the helpdesk under gunicorn, wired together; see the module docstring.

    Once per test process: under pytest-xdist a module's tests may be spread over workers and
    interleaved with other modules, and starting the stack again each time would be slow.
    """
    from tests.conftest import _stop_process
    from wazzup_plugin.sandbox.app import create_sandbox_app
    from wazzup_plugin.sandbox.config import SandboxConfig
    from wazzup_plugin.sandbox.server import SandboxServer

    tmp = tmp_path_factory.mktemp("ui-live")
    session = requests.Session()
    sandbox_app = create_sandbox_app(SandboxConfig(api_key=SANDBOX_KEY, status_delays=(NEVER, NEVER, NEVER),
                                                   webhook_backoff=0.2), http=session)
    sandbox = SandboxServer(sandbox_app, "127.0.0.1", 0).start()
    hosts = []
    try:
        env = {"HELPDESK_DATABASE_URL": f"sqlite:///{tmp / 'helpdesk.sqlite3'}",
               "HELPDESK_SQLITE_SYNCHRONOUS": "NORMAL",
               "WAZZUP24_API_KEY": SANDBOX_KEY, "WAZZUP24_API_URL": sandbox.url,
               "WAZZUP24_WEBHOOK_SECRET": WEBHOOK_SECRET, "WAZZUP24_CONNECTION_CACHE_SECONDS": "0"}
        _cli(tmp, env, "db", "upgrade")
        _cli(tmp, env, "users", "create", AGENT, "--display-name", "Alice Agent", "--password-stdin",
             stdin=PASSWORD + "\n")
        token = _cli(tmp, env, "tokens", "create", AGENT, "--label", "ui-tests").strip().splitlines()[-1]

        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env["WAZZUP24_WEBHOOK_URL"] = f"{url}/api/webhook"

        def start_host(port=None, **overrides):
            port = port or _free_port()
            hosts.append(_start_gunicorn(tmp, {**env, **overrides}, port))
            return f"http://127.0.0.1:{port}"

        def start_worker():
            """The outbox worker as ``serve`` runs it beside gunicorn (the caller stops it)."""
            with open(tmp / "worker.log", "ab") as log:
                return subprocess.Popen([sys.executable, "-m", "host_stub", "wazzup24", "worker", "--poll", "0.2"],
                                        cwd=tmp, env=_clean_env(env), stdout=log, stderr=subprocess.STDOUT)

        start_host(port)
        _cli(tmp, env, "wazzup24", "set-webhook", "--yes")
        yield _Live(url, sandbox.url, token, start_host, session, env["HELPDESK_DATABASE_URL"], start_worker)
    finally:
        for proc in hosts:
            _stop_process(proc)
        sandbox.stop()
        session.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_gunicorn(cwd, env: dict, port: int, timeout: float = 60.0):
    """gunicorn serving the helpdesk on a port chosen beforehand (its webhook URL names the port)."""
    from tests.conftest import _stop_process

    log = open(Path(cwd) / f"gunicorn-{port}.log", "wb")
    proc = subprocess.Popen([
        sys.executable, "-m", "gunicorn", "--no-control-socket", "--workers", "2", "--bind", f"127.0.0.1:{port}",
        "host_stub.wsgi:create_wsgi_app()"], cwd=cwd, env=_clean_env(env), stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.2)
    _stop_process(proc)
    raise RuntimeError("gunicorn did not start: " + (Path(cwd) / f"gunicorn-{port}.log").read_text()[-2000:])


class _Live:
    """What a browser test drives besides the page: the sandbox's control API and our API."""

    def __init__(self, url, sandbox_url, token, start_host, session, database_url, start_worker):
        self.url = url
        self.start_worker = start_worker  # the stack runs no outbox worker unless a test starts one
        self.database_url = database_url
        self.sandbox_url = sandbox_url
        self.start_host = start_host
        self.http = session
        self.auth = {"Authorization": f"Bearer {token}"}

    def sandbox(self, method: str, path: str, **kwargs) -> dict:
        result = self.http.request(method, self.sandbox_url + path, timeout=30, **kwargs)
        assert result.ok, f"sandbox {method} {path}: {result.status_code} {result.text}"
        return result.json()

    def customer_writes(self, text: str, **spec) -> dict:
        """A customer writes to us; the sandbox posts the delivery to our webhook and waits for it."""
        answer = self.sandbox("POST", "/_sandbox/customer-messages", json={"text": text, "wait": True, **spec})
        assert answer["delivery"]["state"] == "delivered", answer
        return answer

    def post_status(self, wazzup_message_id: str, status: str, error: dict | None = None) -> None:
        body = {"messageId": wazzup_message_id, "status": status, "wait": True}
        if error:
            body["error"] = error
        self.sandbox("POST", "/_sandbox/statuses", json=body)

    def api(self, path: str, **params) -> dict:
        result = self.http.get(self.url + path, params=params, headers=self.auth, timeout=30)
        assert result.ok, f"GET {path}: {result.status_code} {result.text}"
        return result.json()

    def chat_by_phone(self, phone: str) -> dict:
        items = self.api("/api/chats", q=phone)["items"]
        assert items, f"no chat with phone {phone}"
        return items[0]

    def message(self, chat_id: int, message_id: int) -> dict:
        items = self.api(f"/api/chats/{chat_id}/messages", limit=200)["items"]
        return next(m for m in items if m["id"] == message_id)


@pytest.fixture
def browser_page(playwright_browser):
    """A fresh browser context (desktop size) and page; ``page.dialogs`` records any dialog that fired."""
    context = playwright_browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.dialogs = []
    page.page_errors = []

    def on_dialog(dialog):
        page.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: page.page_errors.append(str(error)))
    yield page
    context.close()


@pytest.fixture
def signed_in(browser_page, live):
    """The page, signed in as the test agent with the chat list showing."""
    return sign_in(browser_page, live.url)


def sign_in(page, url: str, username: str = AGENT, password: str = PASSWORD):
    from playwright.sync_api import expect

    page.goto(url + "/")
    page.get_by_label("Name", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app-view")).to_be_visible()
    return page


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path

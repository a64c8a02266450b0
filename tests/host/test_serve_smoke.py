"""One smoke test over real HTTP: ``helpdesk-stub serve`` (gunicorn) on 127.0.0.1."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    """``helpdesk-stub serve --no-workers`` on a free port with a fresh SQLite file; stopped by PID."""
    port = _free_port()
    database_url = f"sqlite:///{tmp_path / 'served.sqlite3'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELPDESK_", "WAZZUP24_"))}
    env.update({"HELPDESK_DATABASE_URL": database_url, "HELPDESK_MAX_BODY_BYTES": "4096",
                "HELPDESK_PLUGINS": "wazzup24", "WAZZUP24_API_URL": "http://127.0.0.1:9",
                "WAZZUP24_WEBHOOK_SECRET": "smoke-secret-0123456789"})
    script = Path(sys.executable).parent / "helpdesk-stub"
    log = open(tmp_path / "serve.log", "wb")
    process = subprocess.Popen([str(script), "serve", "--port", str(port), "--workers", "1", "--no-workers"],
                               cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail("serve exited early:\n" + (tmp_path / "serve.log").read_text())
            try:
                if requests.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            pytest.fail("serve did not answer within 60 s:\n" + (tmp_path / "serve.log").read_text())
        yield base, database_url, tmp_path / "serve.log"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the group we started: serve and its gunicorn
            process.wait(timeout=10)
        log.close()


def _token(database_url: str) -> str:
    from datetime import datetime, timezone

    from host_stub.auth import create_agent, create_token

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        now = datetime.now(timezone.utc)
        agent_id = create_agent(conn, "smoke", "smoke password", "Smoke", now)
        token = create_token(conn, agent_id, "smoke", now)
    engine.dispose()
    return token


def test_served_by_gunicorn_health_auth_chats_and_body_limit(served):
    base, database_url, log_path = served
    assert requests.get(f"{base}/api/health", timeout=5).json() == {"status": "ok", "database": "ok"}
    assert requests.get(f"{base}/api/chats", timeout=5).status_code == 401
    token = _token(database_url)
    result = requests.get(f"{base}/api/chats", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert result.status_code == 200 and result.json()["items"] == []
    assert requests.get(f"{base}/api/openapi.json", timeout=5).json()["openapi"].startswith("3.")

    def chunks():  # no Content-Length: Transfer-Encoding: chunked
        for _ in range(8):
            yield b"x" * 1024

    big = requests.post(f"{base}/api/chats/1/read", data=chunks(), timeout=10,
                        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["code"] == "payload_too_large"

    requests.get(f"{base}/api/health?token=smoke-secret-0123456789", timeout=5)
    deadline = time.monotonic() + 10  # gunicorn writes its access log line after answering
    while "/api/health?token=***" not in log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = log_path.read_text()
    assert "GET /api/health?token=*** HTTP/1.1" in text
    assert "smoke-secret-0123456789" not in text and token not in text

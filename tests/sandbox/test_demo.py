"""``helpdesk-stub demo`` starts the whole product, answers on its URL, shows a customer's message
through the public API, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.sandbox.conftest import helpdesk_stub
from wazzup_plugin.sandbox.config import DEFAULT_CHANNEL_ID
from wazzup_plugin.sandbox.demo import Demo, read_env_file


class RunningDemo:
    def __init__(self, proc: subprocess.Popen, env: dict[str, str]):
        self.proc = proc
        self.env = env     # the user's environment: none of the demo's settings
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, marker: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.proc.poll() is None, "demo exited early:\n" + "\n".join(self.seen)
                continue
            self.seen.append(line)
            if marker in line:
                return "\n".join(self.seen)
        raise AssertionError(f"no {marker!r} within {timeout} s:\n" + "\n".join(self.seen))


@pytest.fixture
def demo(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELPDESK_", "WAZZUP24_"))}
    proc = subprocess.Popen([*helpdesk_stub(), "demo", "--data-dir", str(tmp_path / "demo-data"), "--port", "0",
                             "--sandbox-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, text=True, cwd=tmp_path, env=env, start_new_session=True)
    running = RunningDemo(proc, env)
    yield running
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_demo_runs_the_product_and_a_customer_message_appears_through_the_api(demo, tmp_path):
    banner = demo.wait_for("Press Ctrl-C")
    url = re.search(r"Open:\s+(\S+)", banner).group(1).rstrip("/")
    token = re.search(r"API token:\s+(\S+)", banner).group(1)
    sandbox = re.search(r"Sandbox:\s+(\S+)", banner).group(1)
    assert re.search(r"Sign in:\s+demo / \S{8,}", banner)
    auth = {"Authorization": f"Bearer {token}"}

    assert requests.get(url + "/", timeout=10).status_code == 200
    seeded = requests.get(url + "/api/chats", headers=auth, timeout=10).json()["items"]
    assert {"Ivan Petrov", "Maria Ivanova", "Olga Smirnova", "Dmitry Sokolov"} <= {c["title"] for c in seeded}

    wrote = requests.post(sandbox + "/_sandbox/customer-messages", timeout=30,
                          json={"chatId": "79990000001", "name": "Test Customer", "text": "Is anyone there? 👋"})
    assert wrote.status_code == 201
    assert wrote.json()["delivery"]["state"] == "delivered"
    chats = requests.get(url + "/api/chats", headers=auth, timeout=10).json()["items"]
    [chat] = [c for c in chats if c["phone"] == "79990000001"]
    assert (chat["type"], chat["title"]) == ("wazzup", "Test Customer")
    messages = requests.get(f"{url}/api/chats/{chat['id']}/messages", headers=auth, timeout=10).json()["items"]
    assert [(m["direction"], m["text"]) for m in messages] == [("in", "Is anyone there? 👋")]

    settings = read_env_file(tmp_path / "demo-data" / ".env")
    assert settings["WAZZUP24_API_URL"] == sandbox
    assert settings["WAZZUP24_WEBHOOK_URL"] == f"{url}/api/webhook?token={settings['WAZZUP24_WEBHOOK_SECRET']}"

    # The commands the banner gives, pasted into a shell where the demo was started (no venv activated).
    write = re.search(r"make a customer write:\n\s+(.+)", banner).group(1)
    wrote = subprocess.run(["bash", "-c", write], cwd=tmp_path, env=demo.env, capture_output=True, text=True,
                           timeout=60)
    assert wrote.returncode == 0 and '"state": "delivered"' in wrote.stdout, wrote.stderr
    check = re.search(r"run from its data folder, e.g.\n\s+(cd .+)", banner).group(1)
    checked = subprocess.run(["bash", "-c", check], cwd=tmp_path, env=demo.env, capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0 and "Wazzup24 connection: OK" in checked.stdout, checked.stdout + checked.stderr

    os.killpg(demo.proc.pid, signal.SIGINT)   # what Ctrl-C in a terminal does
    assert demo.proc.wait(timeout=60) == 0
    for address in (url, sandbox):
        with pytest.raises(requests.ConnectionError):
            requests.get(address + "/", timeout=2)


def test_the_demo_keeps_its_secrets_and_credentials_across_runs(tmp_path):
    first = Demo(tmp_path / "data", "127.0.0.1", 8000, 8100, "helpdesk-stub")
    first.prepare()
    first.creds = {"agent": "demo", "password": "pw-123456", "token": "hdt_x", "seeded": True}
    first.save_creds()
    (tmp_path / "data" / "helpdesk.sqlite3").write_bytes(b"")     # the database exists now
    again = Demo(tmp_path / "data", "127.0.0.1", 8001, 8101, "helpdesk-stub")
    again.prepare()
    for key in ("HELPDESK_SECRET_KEY", "WAZZUP24_API_KEY", "WAZZUP24_WEBHOOK_SECRET"):
        assert again.settings[key] == first.settings[key]
    assert again.settings["WAZZUP24_API_URL"] == "http://127.0.0.1:8101"
    assert again.creds["password"] == "pw-123456"
    assert oct((tmp_path / "data" / ".env").stat().st_mode & 0o777) == "0o600"


def test_the_demos_env_file_names_the_channel_its_helpdesk_sends_through(tmp_path):
    """The CLI run from the data folder (test-connection, simulate-incoming) picks the running helpdesk's
    channel, not an error about two active ones or a made-up channel."""
    first = Demo(tmp_path / "data", "127.0.0.1", 8000, 8100, "helpdesk-stub")
    first.prepare()
    (tmp_path / "data" / "helpdesk.sqlite3").write_bytes(b"")
    again = Demo(tmp_path / "data", "127.0.0.1", 8000, 8100, "helpdesk-stub")
    again.prepare()
    assert read_env_file(tmp_path / "data" / ".env")["WAZZUP24_CHANNEL_ID"] == DEFAULT_CHANNEL_ID
    assert first.env["WAZZUP24_CHANNEL_ID"] == again.env["WAZZUP24_CHANNEL_ID"] == DEFAULT_CHANNEL_ID


def test_the_banners_commands_run_the_demos_cli_from_where_the_user_is(tmp_path, monkeypatch):
    exe = tmp_path / ".venv" / "bin" / "helpdesk-stub"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [".venv/bin/helpdesk-stub", "demo"])

    def banner() -> str:
        lines = []
        demo = Demo(Path("demo-data"), "127.0.0.1", 8000, 8101, "helpdesk-stub", out=lines.append)
        demo.creds = {"agent": "demo", "password": "pw-123456", "token": "hdt_x"}
        demo.banner()
        return "\n".join(lines)

    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))   # the README's way: no venv activated
    shown = banner()
    assert "\n              .venv/bin/helpdesk-stub wazzup24 sandbox-ctl --url http://127.0.0.1:8101 write 'Hello!'\n" \
        in shown
    assert "\n              cd demo-data && ../.venv/bin/helpdesk-stub wazzup24 test-connection\n" in shown
    monkeypatch.setenv("PATH", str(exe.parent))             # the venv activated: the name finds it
    assert "\n              cd demo-data && helpdesk-stub wazzup24 test-connection\n" in banner()


def test_the_demos_data_folder_is_the_users_alone(tmp_path):
    (tmp_path / "data" / "logs").mkdir(parents=True, mode=0o755)   # left by an older demo
    Demo(tmp_path / "data", "127.0.0.1", 8000, 8100, "helpdesk-stub").prepare()
    for folder in (tmp_path / "data", tmp_path / "data" / "logs"):
        assert oct(folder.stat().st_mode & 0o777) == "0o700", folder


def test_the_demo_never_passes_the_callers_wazzup_settings_on(tmp_path, monkeypatch):
    monkeypatch.setenv("WAZZUP24_API_KEY", "a-real-production-key")
    monkeypatch.setenv("WAZZUP24_API_URL", "https://api.wazzup24.com")
    monkeypatch.setenv("HELPDESK_DATABASE_URL", "postgresql+psycopg://prod/db")
    demo = Demo(tmp_path / "data", "127.0.0.1", 8000, 8100, "helpdesk-stub")
    demo.prepare()
    assert demo.env["WAZZUP24_API_KEY"] != "a-real-production-key"
    assert demo.env["WAZZUP24_API_URL"] == "http://127.0.0.1:8100"
    assert demo.env["HELPDESK_DATABASE_URL"].startswith("sqlite:///")


def test_a_port_left_in_time_wait_by_the_last_run_counts_as_free():
    """Ctrl-C, then start again at once: the closed connections of the last run must not block it."""
    import socket

    from wazzup_plugin.sandbox.demo import check_port

    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server side closes first: its end of the connection waits in TIME_WAIT
        client.close()
    assert check_port("127.0.0.1", port, "--port") == port

"""Faults of the whole ``helpdesk-stub serve``: a restart while Wazzup is slow, serve itself SIGKILLed.

Real processes on 127.0.0.1: serve (gunicorn and the outbox worker under it) against the sandbox,
which runs in this process on the real clock. Its ``slow`` fault accepts a message, then holds the
answer: a send is then inside its call to Wazzup for as long as the test wants. Timeouts are small
so that each test takes seconds, not minutes; every wait is bounded and every process is stopped
by its own PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pytest
import requests
import sqlalchemy as sa

from wazzup_plugin.outbound import outbox
from wazzup_plugin.outbound.context import outbound

from fire_support import FIRE_API_KEY, _children, _pid_alive, free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SENT_ON = ("accepted", "sent", "delivered", "read")


class Served:
    """``helpdesk-stub serve`` on a free port, in a session of its own; ``stop()`` sends SIGTERM."""

    def __init__(self, tmp_path, env: dict, *args: str, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"serve-{self.port}.log"
        full = {k: v for k, v in os.environ.items() if not k.startswith(("HELPDESK_", "WAZZUP24_"))}
        full.update(env, PYTHONUNBUFFERED="1")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "host_stub", "serve", "--no-migrate", "--port", str(self.port), *args],
                cwd=tmp_path, env=full, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(self._healthy, 60, 0.2, "serve's /api/health")
        except AssertionError:
            self.kill()
            raise AssertionError("serve did not start:\n" + self.log()) from None
        self.children = _children(self.proc.pid)

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, "serve exited:\n" + self.log()
        return requests.get(self.url + "/api/health", timeout=2).status_code == 200

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def terminate_and_wait(self, timeout: float) -> float:
        """SIGTERM serve; returns how long it took to exit."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=timeout)
        return time.monotonic() - started

    def kill(self) -> None:
        """Whatever is left, by PID: serve, then the children it started."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for pid in getattr(self, "children", []):
            for grandchild in _children(pid) if _pid_alive(pid) else []:
                _kill(grandchild)
            _kill(pid)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture
def clock(clock):
    # The real time: serve's processes read the real clock, and compare it with the rows written here.
    clock.now = datetime.now(timezone.utc)
    return clock


@pytest.fixture
def serve(tmp_path, config, engine, sandbox):
    """``serve(*args, port=None, **env)``: the helpdesk on the test's database (its tables made:
    ``serve --no-migrate`` refuses a database behind the models) against a fresh sandbox (``serve.wazzup``)."""
    wazzup = sandbox(status_delays=(0, 0, 0))
    started: list[Served] = []

    def start(*args, port=None, **env):
        settings = {"HELPDESK_DATABASE_URL": config.database_url, "HELPDESK_PLUGINS": "wazzup24",
                    "HELPDESK_SQLITE_SYNCHRONOUS": "NORMAL", "WAZZUP24_API_KEY": FIRE_API_KEY,
                    "WAZZUP24_API_URL": wazzup.url, "WAZZUP24_CONNECT_TIMEOUT": "1"}
        settings.update({k: str(v) for k, v in env.items()})
        served = Served(tmp_path, settings, *args, port=port)
        started.append(served)
        return served

    start.wazzup = wazzup
    yield start
    for served in started:
        served.kill()


@pytest.fixture
def chat(make_wazzup_chat):
    from wazzup_plugin.sandbox.config import DEFAULT_CHANNEL_ID

    return make_wazzup_chat(channel_id=DEFAULT_CHANNEL_ID)


def _send(served: Served, agent, chat_id: int, text: str, timeout: float = 60):
    return requests.post(f"{served.url}/api/chats/{chat_id}/wazzup24/send", json={"text": text},
                         headers=agent["headers"], timeout=timeout)


def _accepted(wazzup) -> dict[str, int]:
    return requests.get(wazzup.url + "/_sandbox/received", timeout=10).json()["byCrmMessageId"]


def _fault(wazzup, **spec) -> None:
    assert requests.post(wazzup.url + "/_sandbox/faults", json=spec, timeout=10).status_code < 300


def _outbox(helpdesk) -> list[dict]:
    from wazzup_plugin.state import get_state

    o, m = get_state(helpdesk).tables["outbox"], helpdesk.tables.messages
    with helpdesk.db.read() as conn:
        return [dict(r) for r in conn.execute(
            sa.select(o.c.message_id, o.c.state, o.c.lease_owner, o.c.lease_until, o.c.attempt_started_at,
                      o.c.maybe_sent, m.c.status).join(m, m.c.id == o.c.message_id)
            .order_by(o.c.message_id)).mappings()]


def test_a_restart_lets_the_send_in_progress_finish_and_answers_the_agent(serve, agent, chat, helpdesk):
    """SIGTERM while an agent's send is inside its call to a slow Wazzup (a deploy): the answer
    comes back as accepted, nobody is cut off, serve exits cleanly (gunicorn's graceful timeout is
    the request timeout, 60 s by default; it was 10)."""
    served = serve("--workers", "1", "--no-workers", WAZZUP24_READ_TIMEOUT="16")
    _fault(serve.wazzup, kind="slow", seconds=13, count=1, path="/v3/message")
    answer = {}

    def agent_sends():
        try:
            answer["response"] = _send(served, agent, chat, "sent during a deploy")
        except requests.RequestException as exc:
            answer["error"] = exc

    thread = threading.Thread(target=agent_sends)
    thread.start()
    try:
        wait_until(lambda: _accepted(serve.wazzup), 30, 0.05, "the send to reach the sandbox")
        served.terminate_and_wait(timeout=40)
    finally:
        thread.join(40)
    assert "error" not in answer, f"the agent's request was cut off: {answer['error']!r}\n{served.log()}"
    response = answer["response"]
    assert response.status_code == 201, response.text
    assert response.json()["status"] in SENT_ON
    assert served.proc.returncode == 0 and "SIGKILL" not in served.log(), served.log()
    [row] = _outbox(helpdesk)
    assert row["state"] == "done" and row["status"] in SENT_ON, row


def test_a_restart_stops_the_outbox_worker_after_its_call_and_frees_the_rest_of_its_batch(
        serve, chat, helpdesk, clock):
    """SIGTERM while the outbox worker is inside a slow call: that call's answer is recorded, no
    other call starts, and the rows it had claimed are free for the next worker at once."""
    ctx = outbound(helpdesk)
    with helpdesk.db.write() as tx:  # queued as a send Wazzup refused leaves them
        for i in range(3):
            outbox.enqueue(tx, ctx, chat_id=chat, now=clock(), lease_owner=None, text=f"queued {i}")
    _fault(serve.wazzup, kind="slow", seconds=4, count=10, path="/v3/message")

    served = serve("--workers", "1", WAZZUP24_READ_TIMEOUT="10")  # with the outbox worker
    wait_until(lambda: _accepted(serve.wazzup), 30, 0.05, "the worker's first call")
    took = served.terminate_and_wait(timeout=40)

    assert sum(_accepted(serve.wazzup).values()) == 1, "a call started after SIGTERM"
    rows = _outbox(helpdesk)
    assert [r["state"] for r in rows].count("done") == 1, rows
    for row in (r for r in rows if r["state"] == "pending"):
        assert row["lease_owner"] is None and row["lease_until"] is None and row["attempt_started_at"] is None, row
        assert not row["maybe_sent"] and row["status"] == "queued", row
    assert took < 15 and "SIGKILL" not in served.log(), (took, served.log())


def test_serve_killed_by_sigkill_takes_gunicorn_and_the_outbox_worker_with_it(serve):
    """The OOM killer takes serve: its children follow (no orphan holding the port or the outbox),
    so serve starts again on the same port."""
    served = serve("--workers", "1")
    wait_until(lambda: len(_children(served.proc.pid)) >= 2, 30, 0.1, "gunicorn and the outbox worker")
    served.children = children = _children(served.proc.pid)  # the fixture's cleanup kills them by PID
    assert len(children) == 2, children
    served.proc.kill()
    served.proc.wait(timeout=10)
    wait_until(lambda: not any(_pid_alive(pid) for pid in children), 30, 0.1,
               "serve's children to stop after it was killed")

    again = serve("--workers", "1", port=served.port)  # would fail with "Address already in use"
    assert requests.get(again.url + "/api/health", timeout=5).status_code == 200

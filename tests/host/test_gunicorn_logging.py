"""gunicorn's error and access lines go through the helpdesk's log handler: to ``HELPDESK_LOG_FILE``
when set, as text or JSON per ``HELPDESK_LOG_FORMAT``, secrets masked, each line once.

The first tests run ``helpdesk-stub serve`` (gunicorn with ``--access-logfile -``) on 127.0.0.1; the
last ones drive ``MaskingLogger`` in process with gunicorn's own config object."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

SECRET = "gunicorn-log-secret-0123456789"
TEXT_LINE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "  # the start of every TextFormatter line


# ---------------------------------------------------------------- helpdesk-stub serve, for real


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


@pytest.fixture
def serve(tmp_path):
    """``serve(**settings)``: ``helpdesk-stub serve --no-workers --workers 1`` on a free port, its
    stdout and stderr in files of their own; stopped by PID (its process group if it hangs)."""
    started = []

    def start(**settings):
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HELPDESK_", "WAZZUP24_"))}
        env.update({"HELPDESK_DATABASE_URL": f"sqlite:///{tmp_path / 'served.sqlite3'}",
                    "HELPDESK_PLUGINS": "wazzup24", "WAZZUP24_API_URL": "http://127.0.0.1:9",
                    "WAZZUP24_WEBHOOK_SECRET": SECRET, **settings})
        out, err = tmp_path / "serve.stdout", tmp_path / "serve.stderr"
        with open(out, "wb") as out_file, open(err, "wb") as err_file:
            proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "helpdesk-stub"), "serve", "--port", str(port),
                 "--workers", "1", "--no-workers"],
                cwd=tmp_path, env=env, stdout=out_file, stderr=err_file, start_new_session=True)
        started.append(proc)
        server = SimpleNamespace(url=f"http://127.0.0.1:{port}", proc=proc, stdout=out, stderr=err,
                                 stop=lambda: _stop(proc))

        def healthy():
            if proc.poll() is not None:
                pytest.fail(f"serve exited early:\n{_read(err)[-3000:]}\n{_read(out)[-1000:]}")
            try:
                return requests.get(server.url + "/api/health", timeout=2).status_code == 200
            except (requests.ConnectionError, requests.Timeout):  # a worker still booting on a busy machine
                return False

        _wait_until(healthy, 60, "serve to answer /api/health")
        return server

    yield start
    for proc in started:
        _stop(proc)


def _stop(proc) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group we started: serve and its gunicorn
            proc.wait(timeout=10)


def _parent_pid(pid: int) -> int:
    """A process's parent, from /proc (the field after the command's closing parenthesis)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def _json_lines(path: Path) -> list[dict]:
    """Every line of the file, each of which must be one JSON object."""
    entries = []
    for number, line in enumerate(_read(path).splitlines(), 1):
        try:
            entries.append(json.loads(line))
        except ValueError:
            pytest.fail(f"line {number} of the log file is not JSON: {line!r}")
    return entries


@pytest.mark.e2e
def test_serve_in_json_mode_writes_gunicorn_access_lines_and_worker_crashes_as_json_to_the_log_file(
        serve, tmp_path):
    log_file = tmp_path / "helpdesk.log"
    server = serve(HELPDESK_LOG_FORMAT="json", HELPDESK_LOG_FILE=str(log_file))
    assert requests.get(server.url + "/api/health", params={"token": SECRET}, timeout=5).status_code == 200

    def access_entries():
        return [e for e in _json_lines(log_file)
                if e["logger"] == "gunicorn.access" and "token" in e.get("path", "")]

    access = _wait_until(access_entries, 10, "the access line in the log file")
    assert len(access) == 1, access
    entry = access[0]
    assert (entry["level"], entry["method"], entry["path"], entry["status"], entry["remote_addr"]) == (
        "INFO", "GET", "/api/health?token=***", 200, "127.0.0.1")
    assert isinstance(entry["duration_ms"], (int, float)) and entry["duration_ms"] >= 0
    assert "GET /api/health?token=*** HTTP/1.1" in entry["message"]

    entries = _json_lines(log_file)
    booting = [e for e in entries if e["logger"] == "gunicorn.error" and "Booting worker" in e["message"]]
    assert booting, [e["message"] for e in entries]
    assert any(e["logger"] == "host_stub.serve" and "Helpdesk listening on" in e["message"] for e in entries)

    # A worker dying (here: SIGKILL, as the OOM killer would) is reported by gunicorn's master: in the file.
    pid = int(re.search(r"pid: (\d+)", booting[0]["message"]).group(1))
    master = _parent_pid(pid)   # serve's gunicorn runs in a process group of its own
    assert _parent_pid(master) == server.proc.pid, "not a worker of the gunicorn this test started"
    os.kill(pid, signal.SIGKILL)
    crash = _wait_until(lambda: [e for e in _json_lines(log_file) if e["logger"] == "gunicorn.error"
                                 and e["level"] == "ERROR" and f"(pid:{pid})" in e["message"]],
                        15, "gunicorn's error line about the killed worker")
    assert "SIGKILL" in crash[0]["message"]

    server.stop()
    _json_lines(log_file)  # still every line JSON, shutdown lines included
    for path in (log_file, server.stdout, server.stderr):
        assert SECRET not in _read(path), path.name
    for path in (server.stdout, server.stderr):  # nothing went to gunicorn's own stdout/stderr handlers
        assert "/api/health" not in _read(path) and "Booting worker" not in _read(path), _read(path)[-2000:]


@pytest.mark.e2e
def test_serve_in_text_mode_writes_each_access_line_once_in_the_helpdesk_format_to_the_log_file(
        serve, tmp_path):
    log_file = tmp_path / "helpdesk.log"
    server = serve(HELPDESK_LOG_FILE=str(log_file))
    assert requests.get(server.url + "/api/health", params={"token": SECRET}, timeout=5).status_code == 200
    _wait_until(lambda: "token=***" in _read(log_file), 10, "the access line in the log file")
    server.stop()

    lines = _read(log_file).splitlines()
    access = [line for line in lines if "/api/health?token=" in line]
    assert len(access) == 1, access
    assert re.fullmatch(TEXT_LINE + r'INFO gunicorn\.access: 127\.0\.0\.1 "GET /api/health\?token=\*\*\* '
                        r'HTTP/1\.1" 200 \d+ [\d.]+ms', access[0]), access[0]
    assert any(re.fullmatch(TEXT_LINE + r"INFO gunicorn\.error: Booting worker with pid: \d+", line)
               for line in lines), lines
    for path in (log_file, server.stdout, server.stderr):
        assert SECRET not in _read(path), path.name
    for path in (server.stdout, server.stderr):
        assert "/api/health" not in _read(path) and "gunicorn" not in _read(path), _read(path)[-2000:]


def _store_a_file(database: Path, token: str, name: str, data: bytes) -> None:
    """An uploaded file in the served database, as the upload route stores one (under a chat of its own)."""
    import hashlib
    from datetime import datetime, timezone

    import sqlalchemy as sa

    from host_stub.plugins import get_plugin_manager
    from host_stub.schema import assemble_metadata
    from wazzup_plugin import hooks

    tables = assemble_metadata(get_plugin_manager(load_entrypoints=False, extra_plugins=[hooks]))[0].tables
    now = datetime.now(timezone.utc)
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        chat_id = conn.execute(sa.insert(tables["chats"]).values(
            type="wazzup", title="Ivan", unread_count=0, last_message_preview="", last_activity_at=now,
            created_at=now, change_seq=0)).inserted_primary_key[0]
        conn.execute(sa.insert(tables["wazzup_files"]).values(
            token=token, chat_id=chat_id, name=name, content_type="application/pdf", size=len(data),
            sha256=hashlib.sha256(data).hexdigest(), data=data, created_at=now))
    engine.dispose()


@pytest.mark.e2e
def test_serve_masks_the_token_of_a_downloaded_file_in_the_access_log(serve, tmp_path):
    """The token in ``/wazzup24/files/<token>/<name>`` is the file's only key: a plugin's log mask
    (``register_log_masks``) keeps it out of gunicorn's access lines, the path and the request line."""
    import secrets

    log_file = tmp_path / "helpdesk.log"
    server = serve(HELPDESK_LOG_FORMAT="json", HELPDESK_LOG_FILE=str(log_file))
    token = secrets.token_urlsafe(32)
    _store_a_file(tmp_path / "served.sqlite3", token, "a.pdf", b"%PDF-1.4 secret contract")
    answer = requests.get(f"{server.url}/wazzup24/files/{token}/a.pdf", timeout=5)
    assert (answer.status_code, answer.content) == (200, b"%PDF-1.4 secret contract")

    def access_entries():
        return [e for e in _json_lines(log_file) if e["logger"] == "gunicorn.access" and "/wazzup24/" in e["path"]]

    [entry] = _wait_until(access_entries, 10, "the access line in the log file")
    assert (entry["path"], entry["status"]) == ("/wazzup24/files/***/a.pdf", 200)
    assert "GET /wazzup24/files/***/a.pdf HTTP/1.1" in entry["message"]
    server.stop()
    for path in (log_file, server.stdout, server.stderr):
        assert token not in _read(path), path.name


@pytest.mark.e2e
def test_serve_without_a_log_file_writes_its_own_and_gunicorn_lines_once_to_stderr_in_the_helpdesk_format(
        serve):
    server = serve()
    assert requests.get(server.url + "/api/health", params={"token": SECRET}, timeout=5).status_code == 200
    _wait_until(lambda: "token=***" in _read(server.stderr), 10, "the access line on stderr")
    server.stop()

    lines = _read(server.stderr).splitlines()
    access = [line for line in lines if "/api/health?token=" in line]
    assert len(access) == 1, access
    assert re.match(TEXT_LINE + r'INFO gunicorn\.access: 127\.0\.0\.1 "GET /api/health\?token=\*\*\* ', access[0])
    listening = [line for line in lines if "Helpdesk listening on" in line]
    assert len(listening) == 1 and re.match(TEXT_LINE + r"INFO host_stub\.serve: ", listening[0]), listening
    assert "/api/health" not in _read(server.stdout)  # gunicorn's own stdout access handler is gone
    assert SECRET not in _read(server.stderr) + _read(server.stdout)


# ---------------------------------------------------------------- MaskingLogger in process


@pytest.fixture
def gunicorn_env(tmp_path, monkeypatch, isolated_logging):
    """Helpdesk settings for ``MaskingLogger`` (an empty directory, no stray .env); the root logger and
    gunicorn's loggers are put back afterwards."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith(("HELPDESK_", "WAZZUP24_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WAZZUP24_WEBHOOK_SECRET", SECRET)
    return monkeypatch


def _masking_logger(**settings):
    from gunicorn.config import Config as GunicornConfig

    from host_stub.gunicorn_logging import MaskingLogger

    cfg = GunicornConfig()
    for name, value in settings.items():
        cfg.set(name, value)
    return MaskingLogger(cfg)


def _request(query: str):
    environ = {"REQUEST_METHOD": "POST", "RAW_URI": f"/api/webhook?{query}", "SERVER_PROTOCOL": "HTTP/1.1",
               "PATH_INFO": "/api/webhook", "QUERY_STRING": query, "REMOTE_ADDR": "10.0.0.7",
               "HTTP_USER_AGENT": "Wazzup24"}
    request = SimpleNamespace(headers=[("AUTHORIZATION", f"Bearer {SECRET}"), ("USER-AGENT", "Wazzup24")])
    response = SimpleNamespace(status="202 Accepted", sent=17, headers=[])
    return response, request, environ, timedelta(milliseconds=12, microseconds=500)


def test_an_access_line_to_stdout_becomes_one_json_entry_with_fields_in_the_helpdesk_log(gunicorn_env, tmp_path):
    log_file = tmp_path / "helpdesk.log"
    gunicorn_env.setenv("HELPDESK_LOG_FORMAT", "json")
    gunicorn_env.setenv("HELPDESK_LOG_FILE", str(log_file))
    logger = _masking_logger(accesslog="-")
    logger.access(*_request(f"token={SECRET}&page=2"))
    logger.info("Booting worker with pid: %s", 4242)
    for handler in logging.getLogger().handlers:
        handler.flush()

    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [(e["logger"], e["level"]) for e in entries] == [("gunicorn.access", "INFO"), ("gunicorn.error", "INFO")]
    access = entries[0]
    assert {k: access[k] for k in ("remote_addr", "method", "path", "protocol", "status", "bytes", "duration_ms",
                                   "user_agent")} == {
        "remote_addr": "10.0.0.7", "method": "POST", "path": "/api/webhook?token=***&page=2",
        "protocol": "HTTP/1.1", "status": 202, "bytes": 17, "duration_ms": 12.5, "user_agent": "Wazzup24"}
    assert entries[1]["message"] == "Booting worker with pid: 4242"
    assert SECRET not in log_file.read_text()
    assert logging.getLogger("gunicorn.access").handlers == [] and logging.getLogger("gunicorn.access").propagate


def test_a_custom_access_log_format_is_the_text_line_in_the_helpdesk_log(gunicorn_env, tmp_path):
    log_file = tmp_path / "helpdesk.log"
    gunicorn_env.setenv("HELPDESK_LOG_FILE", str(log_file))
    logger = _masking_logger(accesslog="-", access_log_format="%(m)s %(r)s -> %(s)s")
    logger.access(*_request(f"token={SECRET}"))
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = log_file.read_text().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(TEXT_LINE + r"INFO gunicorn\.access: POST POST /api/webhook\?token=\*\*\* HTTP/1\.1 -> 202",
                        lines[0]), lines


def test_an_explicit_gunicorn_error_log_file_keeps_gunicorn_format_with_secrets_masked(gunicorn_env, tmp_path):
    error_log, log_file = tmp_path / "gunicorn-error.log", tmp_path / "helpdesk.log"
    gunicorn_env.setenv("HELPDESK_LOG_FILE", str(log_file))
    logger = _masking_logger(errorlog=str(error_log))
    logger.error("Wazzup refused key %s", SECRET)
    for handler in logging.getLogger("gunicorn.error").handlers:
        handler.flush()
    text = error_log.read_text()
    assert "[ERROR] Wazzup refused key ***" in text and SECRET not in text
    assert "Wazzup refused" not in _read(log_file)  # the operator chose gunicorn's file: once, there

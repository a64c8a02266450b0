"""Tools of the proof-under-fire suite: real servers, a throwaway PostgreSQL, parallel senders.

- ``GunicornServer``: the host (``host_stub.wsgi:create_wsgi_app()``) under gunicorn with N sync
  workers on a free 127.0.0.1 port; it can SIGKILL a worker and keeps its logs in files, so
  tests can search them for secrets.
- ``PgCluster``: a PostgreSQL cluster of the test's own (initdb in a temporary directory, another
  port, its own socket directory, trust auth), which a test may stop and start at will. The
  shared server on 5432 is never touched.
- ``ParallelSender``: posts webhook deliveries from 8 threads, retrying 5xx and connection errors
  with a bounded number of attempts, as Wazzup redelivers.

Every loop is bounded and every process is stopped by its own PID in a finaliser.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[2]
PG_BIN_ROOT = Path("/usr/lib/postgresql")
FIRE_API_KEY = "fire-api-key-7f3c9a1be2d44c0e"
FIRE_WEBHOOK_SECRET = "fire-webhook-secret-5d1e8b7a9c"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - the server may still be starting
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})")


def _children(pid: int) -> list[int]:
    """Direct children of ``pid``, read from /proc (gunicorn's workers are the master's children)."""
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# ---------------------------------------------------------------- database schema


def fire_pm():
    import wazzup_plugin.hooks
    from host_stub.plugins import get_plugin_manager

    return get_plugin_manager(load_entrypoints=False, extra_plugins=[wazzup_plugin.hooks])


def prepare_database(url: str) -> None:
    """A fresh schema with every table of the host and the plugin (PostgreSQL: dropped first)."""
    from host_stub.db import make_engine
    from host_stub.schema import create_all

    engine = make_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA public CASCADE"))
                conn.execute(sa.text("CREATE SCHEMA public"))
        create_all(engine, fire_pm())
    finally:
        engine.dispose()


def create_agent_token(url: str, username: str = "fire") -> str:
    """An agent with an API token in the database at ``url``; returns the token."""
    from datetime import datetime, timezone

    from host_stub.auth import create_agent, create_token
    from host_stub.db import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            now = datetime.now(timezone.utc)
            agent_id = create_agent(conn, username, "correct horse battery", username.title(), now)
            return create_token(conn, agent_id, "fire", now)
    finally:
        engine.dispose()


# ---------------------------------------------------------------- gunicorn


@dataclass
class GunicornServer:
    """The host under gunicorn. ``start()`` waits for /api/health; ``stop()`` ends it by PID."""

    env: dict
    workdir: Path
    workers: int = 4
    timeout: int = 60
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.workdir / "gunicorn-access.log"

    @property
    def error_log(self) -> Path:
        return self.workdir / "gunicorn-error.log"

    @property
    def output_log(self) -> Path:
        return self.workdir / "gunicorn-output.log"

    def start(self, wait: float = 60) -> "GunicornServer":
        env = {**os.environ, **self.env}
        env.setdefault("PYTHONUNBUFFERED", "1")
        argv = [sys.executable, "-m", "gunicorn", "--no-control-socket",
                "--workers", str(self.workers), "--worker-class", "sync",
                "--bind", f"127.0.0.1:{self.port}", "--timeout", str(self.timeout),
                "--graceful-timeout", "5",
                "--access-logfile", str(self.access_log), "--error-logfile", str(self.error_log),
                "--capture-output",
                "--logger-class", "host_stub.gunicorn_logging.MaskingLogger",
                "host_stub.wsgi:create_wsgi_app()"]
        self._out = open(self.output_log, "ab")
        self.proc = subprocess.Popen(argv, cwd=self.workdir, env=env, stdout=self._out, stderr=subprocess.STDOUT)
        self.wait_healthy(wait)
        wait_until(lambda: len(self.worker_pids()) >= self.workers, 30, what="all gunicorn workers")
        return self

    def wait_healthy(self, timeout: float = 60) -> None:
        def healthy():
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.proc.returncode}:\n{self.logs()[-4000:]}")
            return requests.get(self.url + "/api/health", timeout=2).status_code == 200

        try:
            wait_until(healthy, timeout, 0.2, "gunicorn /api/health")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- gunicorn logs ---\n{self.logs()[-4000:]}") from None

    def worker_pids(self) -> list[int]:
        return [p for p in _children(self.proc.pid) if _pid_alive(p)] if self.proc else []

    def kill_worker(self) -> int:
        """SIGKILL one worker (gunicorn's master starts a replacement); returns its PID."""
        pids = self.worker_pids()
        assert pids, "no gunicorn worker to kill"
        victim = random.choice(pids)
        os.kill(victim, signal.SIGKILL)
        return victim

    def tracebacks(self, limit: int = 3) -> str:
        """The last few tracebacks in the server's logs, for failure messages."""
        text = self.logs()
        blocks = [b for b in text.split("Traceback (most recent call last):")[1:]]
        return "\n---\n".join(b[-1500:] for b in blocks[-limit:]) or "(no tracebacks in the logs)"

    def logs(self) -> str:
        text = ""
        for path in (self.error_log, self.access_log, self.output_log):
            if path.exists():
                text += path.read_text(encoding="utf-8", errors="replace")
        return text

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # gunicorn's quick shutdown: tests need no graceful drain
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                for pid in self.worker_pids():
                    os.kill(pid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._out.close()



# ---------------------------------------------------------------- a throwaway PostgreSQL


def pg_bin() -> Path | None:
    if not PG_BIN_ROOT.is_dir():
        return None
    versions = sorted((p for p in PG_BIN_ROOT.iterdir() if (p / "bin" / "initdb").exists()),
                      key=lambda p: int(p.name) if p.name.isdigit() else 0)
    return versions[-1] / "bin" if versions else None


class PgCluster:
    """A PostgreSQL cluster in a temporary directory on its own port; never the shared server."""

    def __init__(self, bindir: Path, root: Path):
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.logfile = root / "postgres.log"
        self.port = free_port()

    def _run(self, *argv, check=True, timeout=120):
        cmd = [str(a) for a in argv]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, timeout=timeout, capture_output=True, text=True)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")
        self._run(self.bindir / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8", "--locale=C")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.sockets}'\nfsync = off\n"
                       "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n")

    def start(self) -> None:
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-l", self.logfile, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop", check=False)

    def is_running(self) -> bool:
        return self._run(self.bindir / "pg_ctl", "-D", self.data, "status", check=False).returncode == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        admin = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)



# ---------------------------------------------------------------- parallel deliveries


@dataclass
class SendReport:
    statuses: list[int] = field(default_factory=list)  # the final status of each delivery
    attempts: int = 0
    retried_5xx: int = 0
    connection_errors: int = 0
    seen_5xx: list[int] = field(default_factory=list)

    @property
    def failed(self) -> list[int]:
        return [s for s in self.statuses if s != 200]


class ParallelSender:
    """Posts bodies from ``clients`` threads; 5xx and connection errors are redelivered, as Wazzup does."""

    def __init__(self, url: str, clients: int = 8, attempts: int = 30, backoff: float = 0.2, headers=None):
        self.url = url
        self.clients = clients
        self.attempts = attempts
        self.backoff = backoff
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self._lock = threading.Lock()
        self._local = threading.local()
        self.last_report: SendReport | None = None

    def _session(self) -> requests.Session:
        if getattr(self._local, "session", None) is None:
            self._local.session = requests.Session()
        return self._local.session

    def post_one(self, body, report: SendReport) -> int:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body, ensure_ascii=False).encode("utf-8")
        status = 0
        for attempt in range(self.attempts):
            try:
                resp = self._session().post(self.url, data=data, headers=self.headers, timeout=60)
                status = resp.status_code
                with self._lock:
                    report.attempts += 1
                    if status >= 500:
                        report.retried_5xx += 1
                        report.seen_5xx.append(status)
                if status < 500:
                    return status
            except requests.RequestException:
                with self._lock:
                    report.attempts += 1
                    report.connection_errors += 1
                self._local.session = None  # the worker may have died with our connection
            time.sleep(min(2.0, self.backoff * (attempt + 1)))
        return status

    def send(self, bodies) -> SendReport:
        report = SendReport()
        self.last_report = report  # readable while the load runs
        with ThreadPoolExecutor(self.clients) as pool:
            report.statuses = list(pool.map(lambda b: self.post_one(b, report), bodies))
        return report


# ---------------------------------------------------------------- Wazzup-shaped workloads

CHANNEL_ID = "b96a353b-06f5-4cac-8413-ba1d8e93f981"


def phone(n: int) -> str:
    return f"7916{n:07d}"


@dataclass
class InboundWorkload:
    """Distinct incoming messages spread over chats, grouped into deliveries, each delivery repeated."""

    messages: list[dict]
    deliveries: list[dict]  # every distinct delivery once
    bodies: list[dict]      # what is sent: every delivery ``repeat`` times, shuffled

    @property
    def message_ids(self) -> set[str]:
        return {m["messageId"] for m in self.messages}

    @property
    def chat_ids(self) -> set[str]:
        return {m["chatId"] for m in self.messages}


def inbound_workload(chats: int, per_chat: int, per_delivery: int, repeat: int = 3, seed: int = 7,
                     first_chat: int = 0) -> InboundWorkload:
    import uuid
    from datetime import datetime, timedelta, timezone

    from wazzup_plugin.sandbox.deliveries import delivery, incoming_message

    rng = random.Random(seed)
    start = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
    messages = []
    for c in range(first_chat, first_chat + chats):
        for k in range(per_chat):
            messages.append(incoming_message(
                channel_id=CHANNEL_ID, chat_id=phone(c), name=f"Customer {c}",
                text=f"message {k} from customer {c}",
                message_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                at=start + timedelta(seconds=k * 7 + c)))
    order = messages[:]
    rng.shuffle(order)  # one delivery mixes chats, and a chat's first messages race in several deliveries
    deliveries = [delivery(messages=order[i:i + per_delivery]) for i in range(0, len(order), per_delivery)]
    bodies = [d for d in deliveries for _ in range(repeat)]
    rng.shuffle(bodies)
    return InboundWorkload(messages, deliveries, bodies)


def stored_inbound(url: str) -> dict:
    """What the database holds: wazzup chats, and each stored Wazzup message id with its chat's id."""
    from host_stub.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            chats = conn.execute(sa.text(
                "SELECT c.id, w.wazzup_chat_id FROM chats c JOIN wazzup_chats w ON w.chat_id = c.id "
                "WHERE c.type = 'wazzup'")).all()
            rows = conn.execute(sa.text(
                "SELECT w.wazzup_message_id, wc.wazzup_chat_id FROM messages m "
                "JOIN wazzup_messages w ON w.message_id = m.id "
                "JOIN wazzup_chats wc ON wc.chat_id = m.chat_id")).all()
            host_messages = conn.execute(sa.text("SELECT count(*) FROM messages")).scalar()
            host_chats = conn.execute(sa.text("SELECT count(*) FROM chats")).scalar()
    finally:
        engine.dispose()
    return {"chats": [r[1] for r in chats], "messages": rows,
            "host_messages": host_messages, "host_chats": host_chats}


def assert_exactly_once(url: str, workload: InboundWorkload) -> None:
    """Every message of the workload stored once, in its own chat; every chat created once; nothing else."""
    stored = stored_inbound(url)
    ids = [r[0] for r in stored["messages"]]
    assert len(ids) == len(workload.messages), f"{len(ids)} messages stored for {len(workload.messages)} sent"
    assert set(ids) == workload.message_ids
    by_id = {m["messageId"]: m["chatId"] for m in workload.messages}
    wrong_chat = [mid for mid, chat in stored["messages"] if by_id[mid] != chat]
    assert not wrong_chat, f"{len(wrong_chat)} messages stored in the wrong chat"
    assert sorted(stored["chats"]) == sorted(workload.chat_ids), (
        f"{len(stored['chats'])} chats for {len(workload.chat_ids)} customers")
    assert stored["host_messages"] == len(workload.messages)
    assert stored["host_chats"] == len(workload.chat_ids)


# ---------------------------------------------------------------- a scripted Wazzup on 127.0.0.1


class ScriptedWazzup:
    """A tiny HTTP server answering every request with ``responder(method, path, headers, body)``.

    For faults the sandbox does not need to model (a hostile or broken upstream). Records requests.
    """

    def __init__(self, responder):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self
        self.requests: list[tuple[str, str, dict, bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append((self.command, self.path, dict(self.headers), body))
                status, headers, payload = responder(self.command, self.path, dict(self.headers), body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

"""Fixtures only the proof-under-fire suite needs (tools in ``fire_support.py``).

Tests here import ``fire_support`` directly: this directory is put on ``sys.path`` below.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fire_support import FIRE_API_KEY, GunicornServer, PgCluster, pg_bin, prepare_database  # noqa: E402


@pytest.fixture(params=["sqlite", "postgres"])
def fire_database_url(request, tmp_path):
    """SQLite in a file, or this test run's PostgreSQL database on the shared server (skipped without one)."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_database_url")
    return f"sqlite:///{tmp_path / 'fire.sqlite3'}"


@pytest.fixture
def gunicorn(tmp_path):
    """A factory: ``gunicorn(database_url, workers=4, **env)`` starts a server; all stop at the end."""
    servers: list[GunicornServer] = []

    def start(database_url: str, workers: int = 4, prepare: bool = True, **env) -> GunicornServer:
        if prepare:
            prepare_database(database_url)
        workdir = tmp_path / f"gunicorn-{len(servers)}"
        workdir.mkdir()
        base = {
            "HELPDESK_DATABASE_URL": database_url,
            "HELPDESK_SECRET_KEY": "fire-secret-key-0a9b8c7d6e5f",
            "HELPDESK_PLUGINS": "wazzup24",
            "HELPDESK_SQLITE_SYNCHRONOUS": "NORMAL",
            "HELPDESK_LOG_LEVEL": "INFO",
            "WAZZUP24_API_KEY": FIRE_API_KEY,
            "WAZZUP24_API_URL": "http://127.0.0.1:9",  # nothing listens: no test here sends to Wazzup
        }
        base.update({k: str(v) for k, v in env.items()})
        server = GunicornServer(env=base, workdir=workdir, workers=workers)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def pg_cluster():
    """A running throwaway PostgreSQL cluster of this test's own; removed afterwards."""
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("the throwaway PostgreSQL cluster needs PostgreSQL's binaries in /usr/lib/postgresql "
                    "(apt-get install postgresql; .ci/run installs it)")
    root = Path(tempfile.mkdtemp(prefix="fire-pg-"))
    cluster = PgCluster(bindir, root)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster.data.exists():
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)



@pytest.fixture
def sandbox():
    """A factory: ``sandbox(clock=None, **SandboxConfig fields)`` runs the Wazzup emulator on a free port.

    In this process (threads), so a test can read its counts directly and share a FakeClock with it.
    """
    import requests

    from wazzup_plugin.sandbox.app import create_sandbox_app
    from wazzup_plugin.sandbox.config import SandboxConfig
    from wazzup_plugin.sandbox.server import SandboxServer

    servers = []

    def start(clock=None, **config):
        app = create_sandbox_app(SandboxConfig(api_key=FIRE_API_KEY, **config), clock=clock, http=requests.Session())
        server = SandboxServer(app, "127.0.0.1", 0).start()
        app.sandbox.update_config({"public_url": server.url})
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def pytest_configure(config):
    config.addinivalue_line("markers", "real_clock_sandbox: the sandbox keeps real time (a worker process is involved)")

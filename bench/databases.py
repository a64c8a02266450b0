"""Throwaway databases for a benchmark: a SQLite file in scratch space, or a PostgreSQL database
created on the shared server for this run and dropped afterwards (never the server's own databases).
"""

from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bench.harness import scratch_dir

BACKENDS = ("sqlite", "postgres")
# The shared server's admin URL; a benchmark database is created next to the one it names.
PG_ADMIN_URL = (os.environ.get("BENCH_PG_URL") or os.environ.get("HELPDESK_TEST_DATABASE_URL")
                or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def backends(choice: str) -> list[str]:
    return list(BACKENDS) if choice in ("both", "all") else [choice]


@contextmanager
def throwaway_database(backend: str, label: str = "bench"):
    """Yield the URL of an empty database of ``backend``; it is removed afterwards."""
    if backend == "sqlite":
        folder = scratch_dir(f"{label}-sqlite-")
        try:
            yield f"sqlite:///{folder / 'helpdesk.sqlite3'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    if backend != "postgres":
        raise ValueError(f"unknown backend {backend!r}; use sqlite or postgres")
    url = make_url(PG_ADMIN_URL)
    name = f"bench_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def product_plugin_manager():
    """The plugin manager a deployment gets: the host's built-ins plus the Wazzup24 plugin."""
    from host_stub.plugins import get_plugin_manager

    return get_plugin_manager(enabled={"wazzup24"})


def create_product_schema(url: str) -> None:
    """Every host and plugin table, as ``db upgrade`` would leave them."""
    from host_stub.db import make_engine
    from host_stub.schema import create_all

    engine = make_engine(url)
    try:
        create_all(engine, product_plugin_manager())
    finally:
        engine.dispose()

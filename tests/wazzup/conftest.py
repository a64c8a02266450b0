"""Fixtures of the Wazzup24 plugin's tests: running ``helpdesk-stub wazzup24 ...`` on the test database."""

import logging
import os

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from urllib3 import encode_multipart_formdata

from host_stub.cli import build_cli

SECRET = "0123456789abcdef0123456789abcdef"
OUR_URL = "https://helpdesk.example.com/api/webhook"


@pytest.fixture
def cli_env(monkeypatch, tmp_path, engine, database_url, api_key, wazzup_url):
    """Environment for a CLI run on the test database; returns the dict to tweak per test."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    env = {"HELPDESK_DATABASE_URL": database_url, "WAZZUP24_API_KEY": api_key, "WAZZUP24_API_URL": wazzup_url,
           "WAZZUP24_WEBHOOK_URL": OUR_URL, "WAZZUP24_WEBHOOK_SECRET": SECRET}
    for key in list(os.environ):
        if key.startswith(("WAZZUP24_", "HELPDESK_")):
            monkeypatch.delenv(key)
    yield env
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "helpdesk"]:
        root.removeHandler(handler)  # it writes to the runner's stream, closed after the run


def _invoker(cli_env, pm, monkeypatch, *prefix):
    def invoke(*args, input=None, **env):
        for key, value in {**cli_env, **env}.items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        return CliRunner().invoke(build_cli(pm), [*prefix, *args], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def run(cli_env, pm, monkeypatch):
    """``run("status", WAZZUP24_SYNC_USERS="0")``: ``helpdesk-stub wazzup24 status`` with these settings."""
    return _invoker(cli_env, pm, monkeypatch, "wazzup24")


@pytest.fixture
def run_host(cli_env, pm, monkeypatch):
    """``run_host("users", "deactivate", "alice")``: one of the host's own commands, run as ``run`` runs ours."""
    return _invoker(cli_env, pm, monkeypatch)


@pytest.fixture
def upload(client, auth):
    """POST a multipart form to a chat's files route: ``upload(chat, ("a.png", b"...", "image/png"))``;
    ``parts`` replaces the form (name -> (filename, data, type)); ``body``/``content_type`` go raw."""

    def post(chat_id, file=None, *, parts=None, body=None, content_type=None, headers=None):
        if body is None:
            body, content_type = encode_multipart_formdata(parts if parts is not None else {"file": file})
        return client.simulate_post(f"/api/chats/{chat_id}/wazzup24/files", body=body,
                                    headers={**auth, "Content-Type": content_type, **(headers or {})})

    return post


@pytest.fixture
def queue(helpdesk, outbox_ctx, clock):
    """``queue(chat, n)``: n messages stored for the outbox worker at once (as the send route stores a
    file it sends through the worker), in one transaction: due together, claimed together; their ids.
    ``texts=[…]`` gives their texts (and their number; else ``m0``, ``m1`` …); ``tx``: the caller's
    transaction, to write something else in the same commit."""
    from wazzup_plugin.outbound import outbox

    def store(chat_id, n=1, *, texts=None, tx=None):
        if tx is None:
            with helpdesk.db.write() as tx:
                return store(chat_id, n, texts=texts, tx=tx)
        return [outbox.enqueue(tx, outbox_ctx, chat_id=chat_id, now=clock(), lease_owner=None, text=text)
                for text in (texts if texts is not None else [f"m{i}" for i in range(n)])]

    return store


@pytest.fixture
def plugin_settings(helpdesk):
    """``plugin_settings(media_retention_days=30)``: the running plugin's settings with these fields changed."""
    import dataclasses

    from wazzup_plugin.state import get_state

    def change(**fields):
        state = get_state(helpdesk)
        state.settings = dataclasses.replace(state.settings, **fields)

    return change


@pytest.fixture
def media_row(helpdesk):
    """The media row of the only message (or None)."""
    from wazzup_plugin.state import get_state

    def row():
        t = get_state(helpdesk).tables["media"]
        with helpdesk.db.read() as conn:
            rows = conn.execute(sa.select(t)).all()
        assert len(rows) <= 1, rows
        return rows[0] if rows else None

    return row


@pytest.fixture
def download(helpdesk):
    """One loop of a worker's media downloads: ``download("worker-a")`` returns how many it claimed."""
    from wazzup_plugin.media.download import download_due
    from wazzup_plugin.state import get_state

    return lambda owner="worker-a": download_due(helpdesk, get_state(helpdesk), owner)


@pytest.fixture
def query_plans(helpdesk):
    """``with query_plans("FROM wazzup_media") as plans: ...``: after the block, ``plans`` holds the plan of
    every SELECT run in it whose text contains that, as the database would run it. SQLite plans with
    its bound values; PostgreSQL as a prepared statement reused past its fifth run may be planned:
    generic, without the values (a partial index is then used only when the query states its
    condition as a literal), and with sequential scans off, since a few rows would win on cost alone."""
    import contextlib
    import re

    engine = helpdesk.db.engine

    def generic_plan(conn, statement: str, parameters: dict, name: str) -> str:
        names = []

        def placeholder(match):
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        conn.exec_driver_sql(f"PREPARE {name} AS " + re.sub(r"%\((\w+)\)s", placeholder, statement))
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        conn.exec_driver_sql("SET enable_seqscan = off")
        values = ", ".join(f"'{parameters[n].isoformat()}'" if hasattr(parameters[n], "isoformat")
                           else repr(parameters[n]) for n in names)
        return " ".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN EXECUTE {name}({values})"))

    @contextlib.contextmanager
    def capture(fragment: str):
        seen, plans = [], []

        def listen(conn, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith("SELECT") and fragment in statement:
                seen.append((statement, parameters))

        sa.event.listen(engine, "before_cursor_execute", listen)
        try:
            yield plans
        finally:
            sa.event.remove(engine, "before_cursor_execute", listen)
        with engine.connect() as conn:
            for n, (statement, parameters) in enumerate(seen):
                if engine.dialect.name == "sqlite":
                    plans.append(" ".join(row[-1] for row in conn.exec_driver_sql(
                        "EXPLAIN QUERY PLAN " + statement, parameters)))
                else:
                    plans.append(generic_plan(conn, statement, parameters, f"plan{n}"))

    return capture


@pytest.fixture
def chat_identity(helpdesk):
    """A chat's Wazzup key as stored: ``chat_identity(chat_id)`` → (channel id, chat type, Wazzup chat id), or None."""
    from wazzup_plugin.state import get_state

    table = get_state(helpdesk).tables["chats"]

    def identity(chat_id):
        with helpdesk.db.read() as conn:
            row = conn.execute(sa.select(table).where(table.c.chat_id == chat_id)).first()
        return (row.channel_id, row.chat_type, row.wazzup_chat_id) if row else None
    return identity

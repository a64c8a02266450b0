"""Fixtures of the Wazzup24 plugin's tests: running ``helpdesk-stub wazzup24 ...`` on the test database."""

import logging
import os

import pytest
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


@pytest.fixture
def run(cli_env, pm, monkeypatch):
    def invoke(*args, input=None, **env):
        for key, value in {**cli_env, **env}.items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        return CliRunner().invoke(build_cli(pm), ["wazzup24", *args], input=input, catch_exceptions=False)

    return invoke


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

"""The bare-stack baselines the product is compared with, as WSGI apps for gunicorn.

- ``bare_app()``: Falcon parsing a JSON POST and answering JSON, nothing else (baseline a).
- ``probe_app()``: the same plus SQLAlchemy Core inserting the delivery's messages and committing,
  on an engine built by the host's own ``make_engine`` with the product's default settings
  (SQLite: WAL, ``synchronous`` as ``Config`` defaults it; PostgreSQL: the same pool), so the
  baseline pays for the same durability as the product (baselines b and b100: one row per request,
  or a hundred rows in one ``executemany``).

Settings come from the environment: ``BENCH_DATABASE_URL``.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

import falcon
import sqlalchemy as sa

probe_metadata = sa.MetaData()
probe_messages = sa.Table(
    "bench_probe_messages", probe_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("message_id", sa.String(64), nullable=False),
    sa.Column("chat_id", sa.String(200), nullable=False),
    sa.Column("text", sa.Text),
    sa.Column("created_at", sa.DateTime, nullable=False),
)


def product_engine(url: str) -> sa.Engine:
    """An engine with exactly the product's defaults (the host's ``make_engine`` and ``Config``)."""
    from host_stub.config import Config
    from host_stub.db import make_engine

    return make_engine(url, Config().sqlite_synchronous)


def create_probe_table(url: str) -> None:
    engine = product_engine(url)
    try:
        probe_metadata.create_all(engine)
    finally:
        engine.dispose()


class BareWebhook:
    def on_post(self, req, resp):
        body = req.get_media()
        if not isinstance(body, dict):
            raise falcon.HTTPBadRequest(title="not a JSON object")
        resp.media = {"ok": True, "messages": len(body.get("messages") or ())}


class ProbeWebhook:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def on_post(self, req, resp):
        body = req.get_media()
        items = body.get("messages") or ()
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        rows = [{"message_id": m["messageId"], "chat_id": m["chatId"], "text": m.get("text"), "created_at": now}
                for m in items]
        with self.engine.begin() as conn:
            if len(rows) == 1:
                conn.execute(probe_messages.insert(), rows[0])
            elif rows:
                conn.execute(probe_messages.insert(), rows)  # executemany
        resp.media = {"ok": True, "messages": len(rows)}


class Ready:
    def on_get(self, req, resp):
        resp.media = {"status": "ok"}


def _app(webhook) -> falcon.App:
    app = falcon.App()
    app.add_route("/api/webhook", webhook)
    app.add_route("/", Ready())
    return app


def bare_app() -> falcon.App:
    return _app(BareWebhook())


def probe_app(engine: sa.Engine | None = None) -> falcon.App:
    return _app(ProbeWebhook(engine or product_engine(os.environ["BENCH_DATABASE_URL"])))

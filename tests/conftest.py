"""Shared fixtures: databases (SQLite always, PostgreSQL when a URL is given), the app, clients.

PostgreSQL: set ``HELPDESK_TEST_DATABASE_URL`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test``);
every test using ``engine`` then runs on both databases. Each pytest-xdist worker gets a database of
its own, created next to the one named by the URL and dropped at the end.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import falcon.testing
import pytest
import requests
import responses
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from host_stub.app import create_app
from host_stub.auth import create_token, hash_password, insert_agent
from host_stub.config import Config
from host_stub.db import make_engine
from host_stub.plugins import get_plugin_manager
from host_stub.schema import assemble_metadata

FIXTURES = Path(__file__).parent / "fixtures"
PG_URL = os.environ.get("HELPDESK_TEST_DATABASE_URL", "").strip()
BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])
WAZZUP_API = "https://api.wazzup.test"
API_KEY = "test-api-key-0123456789abcdef"


# ---------------------------------------------------------------- time


class FakeClock:
    """An injected clock: tests move time instead of waiting."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0, **kwargs) -> datetime:
        self.now += timedelta(seconds=seconds, **kwargs)
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


# ---------------------------------------------------------------- databases


def _worker_database_url(worker_id: str, run_id: str) -> str:
    url = make_url(PG_URL)
    # The run id keeps concurrent test runs (several people, one server) out of each other's databases.
    name = f"{url.database or 'test'}_hd_{run_id}_{worker_id}".replace("-", "_").lower()
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_database_url(worker_id, testrun_uid):
    """A PostgreSQL database for this test worker and run, or skip with the reason."""
    if not PG_URL:
        pytest.skip("PostgreSQL tests need HELPDESK_TEST_DATABASE_URL (CI sets it)")
    url = _worker_database_url(worker_id, testrun_uid[:10])
    yield url
    admin = sa.create_engine(make_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def worker_id(request):
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def database_url(backend, tmp_path, request):
    if backend == "postgres":
        return request.getfixturevalue("pg_database_url")
    return f"sqlite:///{tmp_path / 'helpdesk.sqlite3'}"


@pytest.fixture
def pm():
    import wazzup_plugin.hooks

    return get_plugin_manager(load_entrypoints=False, extra_plugins=[wazzup_plugin.hooks])


@pytest.fixture(scope="session")
def schema_templates(tmp_path_factory):
    """Where this worker keeps an empty SQLite database per schema (see ``fresh_schema``)."""
    return tmp_path_factory.mktemp("schemas")


@pytest.fixture
def fresh_tables(pm, schema_templates):
    """``fresh_tables(engine, rebuild=False)``: what the ``engine`` fixture does to its database."""
    return lambda engine, rebuild=False: fresh_schema(engine, pm, schema_templates, rebuild)


@pytest.fixture
def engine(database_url, fresh_tables, request):
    engine = make_engine(database_url)
    fresh_tables(engine, rebuild=request.node.get_closest_marker("new_tables") is not None)
    yield engine
    engine.dispose()


def _reset_postgres(engine):
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))


# ---------------------------------------------------------------- fresh schemas, made once

# Creating the schema was most of a database test's setup: on a slow machine about 0.1 s on SQLite and
# 0.4 s on PostgreSQL (DROP SCHEMA, then some 60 statements), for each of some 2,500 tests. Every test
# still starts on an empty database with exactly the schema its plugin manager makes:
# - SQLite copies a file made once per schema (per test worker);
# - PostgreSQL empties the tables and restarts the sequences of the schema it made for an earlier test,
#   when its catalog shows nothing changed since; any difference (a migration test's tables, another
#   plugin's, a dropped column) rebuilds the schema as before.
_SCHEMAS: dict[tuple, tuple[sa.MetaData, str]] = {}  # plugins -> (their tables, the schema's key)
_SQLITE_TEMPLATES: dict[str, Path] = {}  # schema key -> this worker's empty database file
_POSTGRES_MADE: dict[str, tuple[str, str]] = {}  # database URL -> (schema key, catalog fingerprint)

# Everything of the public schema a test could change and a DELETE would not undo, as one digest.
_CATALOG_DIGEST = """
SELECT md5(coalesce(string_agg(item, E'\\n' ORDER BY item), '')) FROM (
  SELECT 'r ' || c.relkind::text || ' ' || c.relname || ' ' || c.relpersistence::text || ' ' || c.relhasrules::text
         || ' ' || coalesce(array_to_string(c.reloptions, ','), '') || ' ' || coalesce(c.relacl::text, '') AS item
    FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'a ' || a.attrelid::regclass::text || '.' || a.attnum || ' ' || a.attname || ' '
         || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text || ' ' || coalesce(l.collname, '')
         || ' ' || coalesce(a.attstattarget::text, '') || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    LEFT JOIN pg_collation l ON l.oid = a.attcollation
    WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'i ' || pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'k ' || k.conrelid::regclass::text || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid)
    FROM pg_constraint k WHERE k.connamespace = 'public'::regnamespace
  UNION ALL
  SELECT 't ' || t.tgrelid::regclass::text || ' ' || t.tgname || ' ' || t.tgenabled::text
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE c.relnamespace = 'public'::regnamespace  -- internal ones too: the foreign keys' (DISABLE TRIGGER ALL)
  UNION ALL
  SELECT 'u ' || w.ev_class::regclass::text || ' ' || w.rulename || ' ' || pg_get_ruledef(w.oid)
    FROM pg_rewrite w JOIN pg_class c ON c.oid = w.ev_class WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 's ' || q.seqrelid::regclass::text || ' ' || q.seqstart || ' ' || q.seqincrement || ' ' || q.seqmin
         || ' ' || q.seqmax || ' ' || q.seqcycle::text
    FROM pg_sequence q JOIN pg_class c ON c.oid = q.seqrelid WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'f ' || p.oid::regprocedure::text || ' ' || md5(p.prosrc) FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'y ' || y.typname FROM pg_type y WHERE y.typnamespace = 'public'::regnamespace
) catalog
"""
_RESTART_SEQUENCES = ("SELECT setval(s.seqrelid, s.seqstart, false) FROM pg_sequence s "
                      "JOIN pg_class c ON c.oid = s.seqrelid WHERE c.relnamespace = 'public'::regnamespace")


def _schema(pm) -> tuple[sa.MetaData, str]:
    """``pm``'s tables and a name for them, assembled once per set of plugins (the set is held as the
    cache's key, so no plugin's id is reused by another meanwhile)."""
    plugins = tuple(sorted(pm.get_plugins(), key=id))
    if plugins not in _SCHEMAS:
        _SCHEMAS[plugins] = (assemble_metadata(pm)[0], f"schema{len(_SCHEMAS)}")
    return _SCHEMAS[plugins]


def fresh_schema(engine: sa.Engine, pm, templates: Path, rebuild: bool = False) -> None:
    """An empty database with every table of ``pm``'s host and plugins, as ``create_all`` makes it.

    ``rebuild``: on PostgreSQL, make the tables anew even if emptying them would do. Emptied tables keep
    the planner's statistics of the rows they had (a test asserting a query's plan needs new tables:
    mark it ``new_tables``)."""
    metadata, key = _schema(pm)
    if engine.dialect.name == "postgresql":
        _fresh_postgres(engine, metadata, key, rebuild)
    else:
        _fresh_sqlite(engine, metadata, key, templates)


def _fresh_sqlite(engine: sa.Engine, metadata: sa.MetaData, key: str, templates: Path) -> None:
    path = Path(engine.url.database or ":memory:")
    template = _SQLITE_TEMPLATES.get(key)
    if template is not None and path.is_absolute() and not path.exists():
        shutil.copyfile(template, path)
        return
    metadata.create_all(engine)
    if template is not None or not path.is_absolute():
        return
    engine.dispose()  # its last connection closed, SQLite has moved the WAL into the file and removed it
    if Path(f"{path}-wal").exists():
        return  # not a file a copy can stand for: make this schema again next time
    template = templates / f"{key}.sqlite3"
    shutil.copyfile(path, template)
    _SQLITE_TEMPLATES[key] = template


def _fresh_postgres(engine: sa.Engine, metadata: sa.MetaData, key: str, rebuild: bool) -> None:
    url = engine.url.render_as_string(hide_password=False)
    made = _POSTGRES_MADE.get(url)
    if not rebuild and made is not None and made[0] == key and _emptied(engine, metadata, made[1]):
        return
    _reset_postgres(engine)
    metadata.create_all(engine)
    with engine.connect() as conn:
        _POSTGRES_MADE[url] = (key, conn.exec_driver_sql(_CATALOG_DIGEST).scalar_one())


def _emptied(engine: sa.Engine, metadata: sa.MetaData, digest: str) -> bool:
    """Empty every table and restart every sequence, if the catalog is still the one made; else False."""
    try:
        with engine.begin() as conn:
            if conn.exec_driver_sql(_CATALOG_DIGEST).scalar_one() != digest:
                return False
            # Children before parents, in one round trip.
            conn.exec_driver_sql("; ".join(f'DELETE FROM "{table.name}"' for table in reversed(metadata.sorted_tables)))
            conn.exec_driver_sql(_RESTART_SEQUENCES)
    except sa.exc.DBAPIError:
        return False  # e.g. rows a constraint will not let go: rebuild
    return True


# ---------------------------------------------------------------- the app


@pytest.fixture
def settings():
    """Environment-style settings for the app; tests change them before ``app`` is built."""
    return {"WAZZUP24_API_KEY": API_KEY, "WAZZUP24_API_URL": WAZZUP_API}


@pytest.fixture
def config(database_url, settings):
    return Config(database_url=database_url, env=dict(settings))


@pytest.fixture
def http():
    session = requests.Session()
    yield session
    session.close()


@pytest.fixture
def app(config, pm, engine, http, clock):
    return create_app(config, pm, engine=engine, http=http, clock=clock)


@pytest.fixture
def helpdesk(app):
    return app.helpdesk


@pytest.fixture
def client(app):
    return falcon.testing.TestClient(app)


@pytest.fixture(scope="session")
def agent_password_hash():
    """The hash of the agents' password (``correct horse battery``), made once: scrypt is slow on purpose."""
    return hash_password("correct horse battery")


@pytest.fixture
def agent(helpdesk, agent_password_hash):
    """An agent with an API token: ``agent["headers"]`` authenticates requests."""
    with helpdesk.db.write() as tx:
        agent_id = insert_agent(tx.conn, "alice", agent_password_hash, "Alice Agent", helpdesk.clock())
        token = create_token(tx.conn, agent_id, "tests", helpdesk.clock())
    return {"id": agent_id, "username": "alice", "token": token,
            "headers": {"Authorization": f"Bearer {token}"}}


@pytest.fixture
def auth(agent):
    return agent["headers"]


@pytest.fixture
def wazzup_api():
    """The Wazzup API as seen by our client: every outgoing call must be declared."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


# ---------------------------------------------------------------- data


@pytest.fixture
def payload():
    """Load a Wazzup-shaped JSON fixture: ``payload("incoming_text")``."""

    def load(name: str):
        return json.loads((FIXTURES / "wazzup" / f"{name}.json").read_text(encoding="utf-8"))

    return load


@pytest.fixture
def make_chat(helpdesk):
    def make(type="internal", title="A chat", phone=None, at=None, unread=0):
        chats = helpdesk.tables.chats
        now = at or helpdesk.clock()
        with helpdesk.db.write() as tx:
            chat_id = tx.conn.execute(sa.insert(chats).values(
                type=type, title=title, phone=phone, unread_count=unread, last_message_at=at,
                last_message_preview="", last_activity_at=now, created_at=now, change_seq=tx.change_seq,
            )).inserted_primary_key[0]
            tx.touched(chat_ids=[chat_id])
        return chat_id

    return make


@pytest.fixture
def make_message(helpdesk):
    def make(chat_id, text="hello", direction="in", status=None, type="text", at=None):
        messages = helpdesk.tables.messages
        now = at or helpdesk.clock()
        with helpdesk.db.write() as tx:
            message_id = tx.conn.execute(sa.insert(messages).values(
                chat_id=chat_id, direction=direction, status=status or ("inbound" if direction == "in" else "queued"),
                type=type, text=text, created_at=now, messenger_at=now, change_seq=tx.change_seq,
            )).inserted_primary_key[0]
            tx.touched(chat_ids=[chat_id], message_ids=[message_id])
        return message_id

    return make


# ---------------------------------------------------------------- foundation: one-off plugins and apps


def _one_off_plugin(name: str = "oneoff", contract: str = "1", **hooks):
    """A one-off plugin module: each keyword is a hook implementation named after its hook."""
    import types

    from host_stub.hookspecs import hookimpl

    module = types.ModuleType(name)
    module.HELPDESK_MANIFEST = {"name": name, "version": "0.0.1", "contract": contract}
    for hook, function in hooks.items():
        setattr(module, hook, hookimpl(function))
    return module


@pytest.fixture
def make_plugin():
    """``make_plugin("name", register_routes=lambda helpdesk: [...])``: a plugin module with a manifest."""
    return _one_off_plugin


@pytest.fixture
def pm_with():
    """``pm_with(*plugins, wazzup=True)``: a fresh plugin manager with these extra plugins."""

    def build(*plugins, wazzup: bool = True):
        import wazzup_plugin.hooks

        extra = ([wazzup_plugin.hooks] if wazzup else []) + list(plugins)
        return get_plugin_manager(load_entrypoints=False, extra_plugins=extra)

    return build


@pytest.fixture
def build_app(config, engine, http, clock):
    """``build_app(pm, config_fields={...}, **settings)``: another app on the same database.

    ``settings`` override environment settings; ``config_fields`` set ``Config`` fields directly."""

    def build(pm, config_fields=None, **settings):
        cfg = Config(database_url=config.database_url, env={**config.env, **settings}, **(config_fields or {}))
        return create_app(cfg, pm, engine=engine, http=http, clock=clock)

    return build


# ---------------------------------------------------------------- sandbox (the Wazzup24 emulator)


class WebhookReceiver:
    """A tiny HTTP server that records what is posted to it (a stand-in for our webhook).

    ``answers``: statuses to answer, one per request in order (then 200). ``wait_for(n)`` waits,
    bounded, until n bodies arrived.
    """

    def __init__(self):
        import threading

        from wazzup_plugin.sandbox.server import _Handler, _ThreadingServer

        self.bodies: list = []
        self.headers: list[dict] = []
        self.answers: list[int] = []
        self._cond = threading.Condition()
        receiver = self

        def app(environ, start_response):
            size = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(size) if size else b""
            with receiver._cond:
                receiver.bodies.append(json.loads(raw) if raw else None)
                receiver.headers.append({k[5:].replace("_", "-").title(): v for k, v in environ.items()
                                         if k.startswith("HTTP_")} | {"Content-Type": environ.get("CONTENT_TYPE")})
                status = receiver.answers.pop(0) if receiver.answers else 200
                receiver._cond.notify_all()
            start_response(f"{status} X", [("Content-Type", "application/json")])
            return [b"{}"]

        self._httpd = _ThreadingServer(("127.0.0.1", 0), _Handler)
        self._httpd.set_app(app)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/webhook"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list:
        with self._cond:
            self._cond.wait_for(lambda: len(self.bodies) >= count, timeout)
            return list(self.bodies)

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


@pytest.fixture
def webhook_receiver():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def sandbox_config():
    """The sandbox's behaviour for a test: our test key, statuses at once (tests change it freely)."""
    from wazzup_plugin.sandbox.config import SandboxConfig

    return SandboxConfig(api_key=API_KEY, status_delays=(0.0, 0.0, 0.0), webhook_backoff=0.0)


def with_waba_channel(sandbox_config):
    """``sandbox_config`` with a WhatsApp Business channel (transport wapi, ``WABA_CHANNEL_ID``) beside the
    plain WhatsApp one: ``def sandbox_config(sandbox_config): return with_waba_channel(sandbox_config)``."""
    from wazzup_plugin.sandbox.config import DEFAULT_CHANNEL_ID, Channel

    return sandbox_config.updated({"channels": [Channel(DEFAULT_CHANNEL_ID).to_json(),
                                                Channel(WABA_CHANNEL_ID, transport="wapi").to_json()]})


@pytest.fixture
def sandbox_app(sandbox_config, clock, http):
    """The sandbox in process, on the fake clock, with no sender thread: call ``sandbox.sender.pump()``."""
    from wazzup_plugin.sandbox.app import create_sandbox_app

    return create_sandbox_app(sandbox_config, clock=clock, http=http, start_sender=False)


@pytest.fixture
def sandbox(sandbox_app):
    return sandbox_app.sandbox


@pytest.fixture
def sandbox_client(sandbox_app):
    return falcon.testing.TestClient(sandbox_app)


@pytest.fixture
def sandbox_server(sandbox_config):
    """The sandbox over real HTTP on a free port (real clock, sender thread on); ``.url``, ``.app.sandbox``."""
    from wazzup_plugin.sandbox.app import create_sandbox_app
    from wazzup_plugin.sandbox.server import SandboxServer

    session = requests.Session()
    app = create_sandbox_app(sandbox_config, http=session)
    server = SandboxServer(app, "127.0.0.1", 0).start()
    app.sandbox.update_config({"public_url": server.url})
    yield server
    server.stop()
    session.close()


# ---------------------------------------------------------------- outbound (send, outbox, connection)

CHANNEL_ID = "e0629e11-0f67-4567-92a9-2237e91ec1b9"
WABA_CHANNEL_ID = "5c7e9a41-2b0d-4e7f-9a55-0d3f1b6c8e21"   # a WhatsApp Business channel (make_waba_chat)


@pytest.fixture
def wazzup_url():
    """The test Wazzup API's base URL (what ``wazzup_api`` mocks)."""
    return WAZZUP_API


@pytest.fixture
def api_key():
    return API_KEY


@pytest.fixture
def channel_id():
    """The channel of chats made by ``make_wazzup_chat``; the only active WhatsApp channel in the fixtures."""
    return CHANNEL_ID


@pytest.fixture
def api_payload():
    """Load a Wazzup API answer: ``api_payload("channels_one_active")`` (tests/fixtures/wazzup/api/)."""

    def load(name: str):
        return json.loads((FIXTURES / "wazzup" / "api" / f"{name}.json").read_text(encoding="utf-8"))

    return load


@pytest.fixture
def make_wazzup_chat(helpdesk, make_chat):
    """A ``wazzup`` chat with its Wazzup identity; ``channel_id=None`` leaves the identity row out."""

    def make(wazzup_chat_id="79011112233", channel_id=CHANNEL_ID, chat_type="whatsapp", title="Ivan",
             phone="79011112233"):
        from wazzup_plugin.state import get_state

        chat_id = make_chat(type="wazzup", title=title, phone=phone)
        if channel_id is not None:
            table = get_state(helpdesk).tables["chats"]
            with helpdesk.db.write() as tx:
                tx.conn.execute(sa.insert(table).values(chat_id=chat_id, channel_id=channel_id, chat_type=chat_type,
                                                        wazzup_chat_id=wazzup_chat_id, contact_name=title))
        return chat_id

    return make


@pytest.fixture
def make_waba_chat(helpdesk, make_wazzup_chat, make_message):
    """A WhatsApp chat on a WhatsApp Business channel (transport ``wapi``, stored as Wazzup's channel list
    says it); ``customer_wrote``: when its customer's latest message came (None: the customer never wrote)."""
    from wazzup_plugin.state import get_state

    def make(customer_wrote=None, channel_id=WABA_CHANNEL_ID, **kwargs):
        table = get_state(helpdesk).tables["channels"]
        with helpdesk.db.write() as tx:
            if tx.conn.execute(sa.select(table.c.channel_id).where(table.c.channel_id == channel_id)).first() is None:
                tx.conn.execute(sa.insert(table).values(channel_id=channel_id, transport="wapi", plain_id="79865784458",
                                                        state="active", updated_at=helpdesk.clock()))
        chat_id = make_wazzup_chat(channel_id=channel_id, **kwargs)
        if customer_wrote is not None:
            make_message(chat_id, "Hello, is the blue one in stock?", at=customer_wrote)
        return chat_id

    return make


@pytest.fixture
def network_error():
    """A network failure as ``requests`` raises it: ``network_error("refused")`` (nothing went out),
    ``"dropped"`` (the connection broke after the request was sent), ``"read_timeout"``, ``"connect_timeout"``."""
    import urllib3.exceptions

    def make(kind: str) -> requests.RequestException:
        if kind == "refused":
            return requests.ConnectionError(urllib3.exceptions.MaxRetryError(
                None, "/v3/message", urllib3.exceptions.NewConnectionError(None, "Connection refused")))
        if kind == "dropped":
            return requests.ConnectionError(urllib3.exceptions.ProtocolError(
                "Connection aborted.", ConnectionResetError(104, "Connection reset by peer")))
        return {"read_timeout": requests.ReadTimeout, "connect_timeout": requests.ConnectTimeout}[kind](kind)

    return make


@pytest.fixture
def outbox_ctx(helpdesk, clock):
    """The outbound flow's objects on the fake clock; the rate limiter's waits move the clock."""
    from wazzup_plugin.outbound.context import outbound

    ctx = outbound(helpdesk)
    ctx.limiter.sleep = clock.advance
    return ctx


@pytest.fixture
def send(client, auth):
    """POST to a chat's send route as the agent: ``send(chat, {"content_uri": ...})``; with no body the
    body is ``{"text": text}`` (``send(chat)`` sends "hi"). ``headers`` go on top of the agent's."""

    def post(chat_id, body=None, *, text="hi", headers=None):
        return client.simulate_post(f"/api/chats/{chat_id}/wazzup24/send",
                                    json={"text": text} if body is None else body,
                                    headers={**auth, **(headers or {})})

    return post


@pytest.fixture
def outbox_row(helpdesk):
    """A message's row in the plugin's outbox, or None: ``outbox_row(message_id).state``."""
    from wazzup_plugin.state import get_state

    def row(message_id):
        o = get_state(helpdesk).tables["outbox"]
        with helpdesk.db.read() as conn:
            return conn.execute(sa.select(o).where(o.c.message_id == message_id)).first()

    return row


@pytest.fixture
def sent_bodies(wazzup_api):
    """The JSON bodies of the calls made to Wazzup's ``/v3/message`` so far: ``[body] = sent_bodies()``."""

    def bodies():
        return [json.loads(c.request.body) for c in wazzup_api.calls if c.request.url.endswith("/v3/message")]

    return bodies


# ---------------------------------------------------------------- inbound webhook (Wazzup24 deliveries)


@pytest.fixture
def deliver(client):
    """POST a delivery to the webhook: ``deliver(payload("incoming_text"))``; bytes/str go as they are."""

    def post(body, path="/api/webhook", headers=None, params=None):
        if isinstance(body, (bytes, str)):
            return client.simulate_post(path, body=body, headers={"Content-Type": "application/json",
                                                                  **(headers or {})}, params=params)
        return client.simulate_post(path, json=body, headers=headers, params=params)

    return post


class WazzupRows:
    """Reads what the webhook stored: host rows joined with the plugin's, as dicts."""

    def __init__(self, helpdesk):
        from wazzup_plugin.state import get_state

        self.db = helpdesk.db
        self.t = get_state(helpdesk).tables
        self.chats_t, self.messages_t = helpdesk.tables.chats, helpdesk.tables.messages

    def _all(self, stmt):
        with self.db.read() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def message(self, wazzup_message_id):
        rows = self.messages(wazzup_message_id=wazzup_message_id)
        assert len(rows) == 1, rows
        return rows[0]

    def messages(self, **where):
        m, wm = self.messages_t, self.t["messages"]
        stmt = sa.select(m, wm.c.wazzup_message_id, wm.c.crm_message_id, wm.c.is_echo, wm.c.version_at,
                         wm.c.author_id, wm.c.sent_from_app).join(wm, wm.c.message_id == m.c.id, isouter=True)
        for name, value in where.items():
            stmt = stmt.where((wm.c[name] if name in wm.c else m.c[name]) == value)
        return self._all(stmt.order_by(m.c.id))

    def chats(self):
        c, wc = self.chats_t, self.t["chats"]
        return self._all(sa.select(c, wc.c.channel_id, wc.c.chat_type, wc.c.wazzup_chat_id, wc.c.contact_name)
                         .join(wc, wc.c.chat_id == c.c.id).order_by(c.c.id))

    def table(self, name):
        return self._all(sa.select(self.t[name]))


@pytest.fixture
def wazzup_rows(helpdesk):
    return WazzupRows(helpdesk)


@pytest.fixture
def outgoing_send(helpdesk):
    """Store an agent's send as the outbound flow does: host row (out, queued) + wazzup_messages
    with ``crm_message_id`` and no Wazzup id yet. ``settle(wazzup_id)`` records the id as a 201 does
    and calls ``apply_parked`` in the same transaction."""
    import uuid

    from wazzup_plugin.inbound.parked import apply_parked
    from wazzup_plugin.state import get_state

    state = get_state(helpdesk)

    class Send:
        def __init__(self, chat_id, text="Your order is ready"):
            now = helpdesk.clock()
            self.crm_message_id = str(uuid.uuid4())
            with helpdesk.db.write() as tx:
                self.id = tx.conn.execute(sa.insert(helpdesk.tables.messages).values(
                    chat_id=chat_id, direction="out", status="queued", type="text", text=text, created_at=now,
                    queued_at=now, change_seq=tx.change_seq)).inserted_primary_key[0]
                tx.conn.execute(sa.insert(state.tables["messages"]).values(
                    message_id=self.id, chat_id=chat_id, wazzup_message_id=None, is_echo=False,
                    crm_message_id=self.crm_message_id))
                tx.touched(chat_ids=[chat_id], message_ids=[self.id])

        def settle(self, wazzup_message_id, status="accepted"):
            with helpdesk.db.write() as tx:
                tx.conn.execute(sa.update(state.tables["messages"]).where(
                    state.tables["messages"].c.message_id == self.id).values(wazzup_message_id=wazzup_message_id))
                tx.conn.execute(sa.update(helpdesk.tables.messages).where(helpdesk.tables.messages.c.id == self.id)
                                .values(status=status, accepted_at=helpdesk.clock(), change_seq=tx.change_seq))
                apply_parked(tx, state, [wazzup_message_id])

        def fail(self):
            with helpdesk.db.write() as tx:
                tx.conn.execute(sa.update(helpdesk.tables.messages).where(helpdesk.tables.messages.c.id == self.id)
                                .values(status="failed", failed_at=helpdesk.clock(), change_seq=tx.change_seq))

    return Send


@pytest.fixture
def gunicorn_host(tmp_path):
    """Start real gunicorn (``--no-control-socket``) on a free 127.0.0.1 port, the app built from env.

    ``host = gunicorn_host({"HELPDESK_DATABASE_URL": url}, workers=2)`` → ``host.url``, ``host.logs``
    (``access``, ``app``, ``stderr`` paths), ``host.stop()`` (e.g. to flush logs before reading them).
    ``port=free_port`` (the fixture) when a setting must name the host's URL before it starts.
    Runs in ``tmp_path`` (no stray ``.env``); stopped by PID.
    """
    from types import SimpleNamespace

    procs = []

    def start(env: dict, workers: int = 2, port: int | None = None):
        url, proc, logs = _start_gunicorn(tmp_path, env, workers, port=port)
        procs.append(proc)
        return SimpleNamespace(url=url, logs=logs, proc=proc, stop=lambda: _stop_process(proc))

    yield start
    for proc in procs:
        _stop_process(proc)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def outbox_worker_process(tmp_path):
    """``start(env)``: the outbox worker as ``serve`` runs it beside gunicorn, a real process on the
    settings ``env`` (its output in ``tmp_path/worker.log``); stopped after the test."""
    import subprocess
    import sys

    procs = []

    def start(env: dict):
        full = {k: v for k, v in os.environ.items() if not k.startswith(("HELPDESK_", "WAZZUP24_"))}
        with open(tmp_path / "worker.log", "ab") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "host_stub", "wazzup24", "worker", "--poll", "0.2"],
                                          cwd=tmp_path, env={**full, **env}, stdout=log, stderr=subprocess.STDOUT))
        return procs[-1]

    yield start
    for proc in procs:
        _stop_process(proc)


@pytest.fixture
def free_port():
    """A free port on 127.0.0.1, for a server whose URL a setting must name before it starts."""
    return _free_port()


def _start_gunicorn(tmp_path, env: dict, workers: int = 2, timeout: float = 60.0, port: int | None = None):
    import subprocess
    import sys
    import time

    port = port or _free_port()
    logs = {"access": tmp_path / "access.log", "app": tmp_path / "app.log", "stderr": tmp_path / "gunicorn.err"}
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("HELPDESK_", "WAZZUP24_"))}
    full_env.update({"HELPDESK_LOG_FILE": str(logs["app"]), **env})
    err = open(logs["stderr"], "wb")
    proc = subprocess.Popen([
        sys.executable, "-m", "gunicorn", "--no-control-socket", "--workers", str(workers),
        "--bind", f"127.0.0.1:{port}", "--access-logfile", str(logs["access"]),
        "--logger-class", "host_stub.gunicorn_logging.MaskingLogger", "host_stub.wsgi:create_wsgi_app()"],
        cwd=tmp_path, env=full_env, stdout=err, stderr=subprocess.STDOUT)
    err.close()
    url = f"http://127.0.0.1:{port}"

    def output() -> str:  # gunicorn's own lines go to the app's log (HELPDESK_LOG_FILE) since it routes them
        return "\n".join(path.read_text(errors="replace")[-2000:] for path in (logs["stderr"], logs["app"])
                         if path.exists())

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("gunicorn exited: " + output())
        try:
            if requests.get(url + "/api/health", timeout=2).status_code == 200:
                return url, proc, logs
        except requests.RequestException:
            pass
        time.sleep(0.2)
    _stop_process(proc)
    raise RuntimeError("gunicorn did not become healthy: " + output())


def _stop_process(proc, timeout: float = 15.0) -> None:
    import subprocess

    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


@pytest.fixture
def isolated_logging():
    """Undo ``configure_logging`` and gunicorn's logger setup after a test that runs them: the root
    logger's and gunicorn's loggers' handlers, levels and propagation are put back (a handler left
    on ``gunicorn.access`` would otherwise reach the next test in the same process)."""
    import logging

    loggers = [logging.getLogger(name) for name in (None, "gunicorn.error", "gunicorn.access")]
    saved = [(log, list(log.handlers), log.propagate, log.level) for log in loggers]
    yield loggers[0]
    for log, handlers, propagate, level in saved:
        for handler in [h for h in log.handlers if h not in handlers]:
            log.removeHandler(handler)
            handler.close()
        for handler in handlers:
            if handler not in log.handlers:
                log.addHandler(handler)
        log.propagate = propagate
        log.setLevel(level)

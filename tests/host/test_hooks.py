"""Each hook of the contract, exercised from the host's side by a tiny one-off plugin."""

import logging
from dataclasses import dataclass

import falcon.testing
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from marshmallow import fields

from host_stub.cli import build_cli
from host_stub.errors import StartupError
from host_stub.schema import assemble_metadata


@dataclass(frozen=True)
class Item:
    """Plugins return plain objects; the host reads the attributes the contract names."""

    name: str = ""
    label: str = ""
    icon: str = ""
    template: str = ""
    resource: object = None
    public: bool = False
    entity: str = ""
    fields: dict | None = None
    load: object = None
    table: object = None
    key: object = None
    columns: dict | None = None
    static_dir: str = ""
    scripts: tuple = ()
    styles: tuple = ()
    argv: tuple = ()


class Echo:
    def on_get(self, req, resp):
        resp.media = {"agent": req.context.agent.username if req.context.agent else None}


def test_hook_register_chat_types_lists_the_type_and_the_builtin_one(build_app, pm_with, make_plugin, auth):
    plugin = make_plugin("sms", register_chat_types=lambda helpdesk: [Item(name="sms", label="SMS", icon="/i.svg")])
    client = falcon.testing.TestClient(build_app(pm_with(plugin)))
    listed = client.simulate_get("/api/chat-types", headers=auth).json
    names = [t["name"] for t in listed["items"]]
    assert "sms" in names and "internal" in names and "wazzup" in names
    assert listed["unknown"]["name"] == "unknown"


def test_hook_register_schema_adds_the_plugins_tables_to_the_schema(pm_with, make_plugin, engine):
    def register_schema(metadata):
        if "sms_links" not in metadata.tables:
            sa.Table("sms_links", metadata, sa.Column("chat_id", sa.ForeignKey("chats.id"), primary_key=True))
        return None

    metadata, dirs = assemble_metadata(pm_with(make_plugin("sms", register_schema=register_schema)))
    assert "sms_links" in metadata.tables and "wazzup_chats" in metadata.tables
    assert any(d.endswith("versions") for d in dirs)
    metadata.create_all(engine)
    assert sa.inspect(engine).has_table("sms_links")


def test_hook_register_schema_builds_a_fresh_schema_per_app(pm_with):
    with_plugin, _ = assemble_metadata(pm_with())
    without, dirs = assemble_metadata(pm_with(wazzup=False))
    assert "wazzup_chats" in with_plugin.tables
    assert "wazzup_chats" not in without.tables and dirs == []


def test_hook_register_fields_adds_plugin_fields_loaded_once_per_page(build_app, pm_with, make_plugin, make_chat,
                                                                       auth):
    calls = []

    def load(conn, ids):
        calls.append(sorted(ids))
        return {i: {"sms_flag": f"flag-{i}"} for i in ids}

    plugin = make_plugin("sms", register_fields=lambda helpdesk: [
        Item(entity="chat", fields={"sms_flag": fields.String()}, load=load)])
    client = falcon.testing.TestClient(build_app(pm_with(plugin)))
    first, second = make_chat(title="a"), make_chat(title="b")
    items = client.simulate_get("/api/chats", headers=auth).json["items"]
    assert {c["id"]: c["sms_flag"] for c in items} == {first: f"flag-{first}", second: f"flag-{second}"}
    assert calls == [sorted([first, second])]


def test_hook_register_fields_refuses_a_field_name_used_twice(build_app, pm_with, make_plugin):
    plugin = make_plugin("sms", register_fields=lambda helpdesk: [
        Item(entity="chat", fields={"wazzup_chat_id": fields.String()}, load=lambda conn, ids: {})])
    with pytest.raises(StartupError, match="chat field 'wazzup_chat_id' is registered twice"):
        build_app(pm_with(plugin))


def test_hook_register_routes_serves_private_and_public_routes(build_app, pm_with, make_plugin, auth):
    plugin = make_plugin("sms", register_routes=lambda helpdesk: [
        Item(template="/api/sms/private", resource=Echo()),
        Item(template="/api/sms/public", resource=Echo(), public=True)])
    client = falcon.testing.TestClient(build_app(pm_with(plugin)))
    assert client.simulate_get("/api/sms/private").status_code == 401
    assert client.simulate_get("/api/sms/private", headers=auth).json == {"agent": "alice"}
    assert client.simulate_get("/api/sms/public").json == {"agent": None}


def test_hook_register_commands_adds_a_command_group(pm_with, make_plugin):
    import click

    def register_commands(cli):
        @cli.group(name="sms")
        def group():
            """SMS channel."""

        @group.command()
        def hello():
            click.echo("hello from sms")

    cli = build_cli(pm_with(make_plugin("sms", register_commands=register_commands)))
    result = CliRunner().invoke(cli, ["sms", "hello"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello from sms\n"


def test_hook_register_ui_serves_the_plugins_assets(build_app, pm_with, make_plugin, tmp_path):
    (tmp_path / "panel.js").write_text("window.smsPanel = true;\n")
    plugin = make_plugin("sms", register_ui=lambda helpdesk: Item(name="sms", static_dir=str(tmp_path),
                                                                 scripts=("panel.js",)))
    app = build_app(pm_with(plugin))
    client = falcon.testing.TestClient(app)
    assert client.simulate_get("/static/plugins/sms/panel.js").text == "window.smsPanel = true;\n"
    assert [u.name for u in app.helpdesk.registrations.ui if u.name == "sms"][0] == "sms"


def test_hook_register_ui_is_used_by_the_hosts_own_chat_type(client, auth):
    internal = [t for t in client.simulate_get("/api/chat-types", headers=auth).json["items"]
                if t["name"] == "internal"][0]
    icon = client.simulate_get(internal["icon"])
    assert icon.status_code == 200
    assert icon.text.lstrip().startswith("<svg")


def test_hook_register_ui_refuses_two_plugins_with_one_name(build_app, pm_with, make_plugin, tmp_path):
    plugin = make_plugin("sms", register_ui=lambda helpdesk: Item(name="wazzup24", static_dir=str(tmp_path)))
    with pytest.raises(StartupError, match="same name"):
        build_app(pm_with(plugin))


def test_hook_register_workers_are_started_by_serve_unless_no_workers(pm_with, make_plugin, monkeypatch, tmp_path):
    import host_stub.cli as cli_module

    started = []

    class FakeProcess:
        def __init__(self, argv, **kwargs):
            started.append(argv)

    monkeypatch.setattr(cli_module.subprocess, "Popen", FakeProcess)
    monkeypatch.setattr(cli_module, "_supervise", lambda procs, **kwargs: None)
    plugin = make_plugin("sms", register_workers=lambda helpdesk: [Item(name="sms-outbox", argv=("sms", "worker"))])
    cli = build_cli(pm_with(plugin))
    env = {"HELPDESK_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}"}
    result = CliRunner(env=env).invoke(cli, ["serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert started[0][1:3] == ["-m", "gunicorn"] and "127.0.0.1:8123" in started[0]
    assert ["sms", "worker"] in [argv[-2:] for argv in started[1:]]

    started.clear()
    result = CliRunner(env=env).invoke(build_cli(pm_with(plugin)), ["serve", "--no-workers"])
    assert result.exit_code == 0, result.output
    assert len(started) == 1 and "127.0.0.1:8000" in started[0]


def test_hook_startup_is_called_once_and_may_refuse_to_start(build_app, pm_with, make_plugin):
    seen = []
    build_app(pm_with(make_plugin("sms", startup=lambda helpdesk: seen.append(helpdesk))))
    assert len(seen) == 1 and seen[0].db is not None

    def refuse(helpdesk):
        raise ValueError("SMS_GATEWAY_URL must be set")

    with pytest.raises(StartupError, match="SMS_GATEWAY_URL must be set"):
        build_app(pm_with(make_plugin("sms", startup=refuse)))


@pytest.fixture
def own_masks(monkeypatch):
    """The process-wide log filter with no plugin masks yet; the ones a test adds go with it."""
    from host_stub.logging_setup import secrets_filter

    monkeypatch.setattr(secrets_filter(), "patterns", [], raising=False)
    return secrets_filter()


def _logged(message: str, *args, context=None) -> logging.LogRecord:
    from host_stub.logging_setup import secrets_filter

    record = logging.LogRecord("plugin", logging.INFO, __file__, 1, message, args, None)
    record.context = context
    secrets_filter().filter(record)
    return record


def test_hook_register_log_masks_keeps_group_1_and_masks_the_rest_of_every_log_record(pm_with, make_plugin,
                                                                                      own_masks):
    pm_with(make_plugin("sms", register_log_masks=lambda: [r"(/sms/receipts/)[0-9a-f]{32}"]), wazzup=False)
    key = "0123456789abcdef" * 2
    record = _logged("fetched %s", f"https://x.example/sms/receipts/{key}/r.pdf",
                     context={"url": f"/sms/receipts/{key}"})
    assert record.getMessage() == "fetched https://x.example/sms/receipts/***/r.pdf"
    assert record.context == {"url": "/sms/receipts/***"}


def test_hook_register_log_masks_of_the_wazzup_plugin_hide_a_files_token(pm_with, own_masks):
    pm_with()
    token = "Zq3-_abcdefghijklmnopqrstuvwxyz0123456789AB"
    record = _logged(f"GET /wazzup24/files/{token}/a.pdf and https://h.example/p/wazzup24/files/{token}/b.png")
    assert token not in record.getMessage() and record.getMessage().count("/wazzup24/files/***/") == 2


@pytest.mark.parametrize("pattern", [r"no group", r"(unclosed", r"(.*)", 42])
def test_hook_register_log_masks_refuses_a_pattern_that_cannot_mask(pm_with, make_plugin, own_masks, pattern):
    with pytest.raises(StartupError, match=r"plugin 'sms' declares the log mask .*group 1"):
        pm_with(make_plugin("sms", register_log_masks=lambda: [pattern]), wazzup=False)


def test_hook_changes_committed_reports_what_a_write_touched(build_app, pm_with, make_plugin):
    calls = []
    plugin = make_plugin("sms", changes_committed=lambda helpdesk, chat_ids, message_ids:
                         calls.append((chat_ids, message_ids)))
    helpdesk = build_app(pm_with(plugin)).helpdesk
    chats = helpdesk.tables.chats
    now = helpdesk.clock()
    with helpdesk.db.write() as tx:
        chat_id = tx.conn.execute(sa.insert(chats).values(
            type="internal", title="t", last_activity_at=now, created_at=now, change_seq=tx.change_seq,
        )).inserted_primary_key[0]
        tx.touched(chat_ids=[chat_id])
        assert calls == []  # not before the commit
    assert calls == [({chat_id}, set())]


def test_hook_changes_committed_listener_failure_never_fails_the_writer(build_app, pm_with, make_plugin, caplog):
    def boom(helpdesk, chat_ids, message_ids):
        raise RuntimeError("listener broke")

    helpdesk = build_app(pm_with(make_plugin("sms", changes_committed=boom))).helpdesk
    with helpdesk.db.write() as tx:
        tx.touched(chat_ids=[1])
    assert "changes_committed listener failed" in caplog.text


@pytest.fixture
def set_access(database_url, agent, tmp_path, monkeypatch, isolated_logging):
    """``set_access(cli, "deactivate")``: ``helpdesk-stub users deactivate alice`` on the tests' database."""
    monkeypatch.chdir(tmp_path)  # no stray .env

    def run(cli, command):
        result = CliRunner(env={"HELPDESK_DATABASE_URL": database_url}).invoke(cli, ["users", command, "alice"])
        assert result.exit_code == 0, result.output
        return result

    return run


def test_hook_agents_access_changed_follows_a_committed_change_and_only_a_real_one(pm_with, make_plugin, agent,
                                                                                    set_access):
    calls = []

    def heard(helpdesk, agent_ids, active):
        agents = helpdesk.tables.agents
        with helpdesk.db.read() as conn:  # another connection: sees the change only once committed
            committed = conn.execute(sa.select(agents.c.is_active).where(agents.c.id == agent["id"])).scalar()
        calls.append((agent_ids, active, bool(committed)))

    cli = build_cli(pm_with(make_plugin("sms", agents_access_changed=heard), wazzup=False))
    set_access(cli, "activate")  # active already: no change, no call
    set_access(cli, "deactivate")
    set_access(cli, "deactivate")
    set_access(cli, "activate")
    assert calls == [({agent["id"]}, False, False), ({agent["id"]}, True, True)]


def test_hook_agents_access_changed_listener_failure_never_fails_the_caller(build_app, pm_with, make_plugin,
                                                                             set_access, caplog):
    def boom(helpdesk, agent_ids, active):
        raise RuntimeError("listener broke")

    plugin = make_plugin("sms", agents_access_changed=boom)
    assert "deactivated agent alice" in set_access(build_cli(pm_with(plugin, wazzup=False)), "deactivate").output
    build_app(pm_with(plugin, wazzup=False)).helpdesk.agents_access_changed({1}, True)
    assert "agents_access_changed listener failed" in caplog.text


def test_hook_register_fields_with_columns_are_joined_into_pages_not_loaded(client, auth, deliver, payload, engine):
    """The plugin's fields come with the page's own query: no separate lookup of its tables."""
    deliver(payload("incoming_text"))
    statements = []
    listener = lambda conn, cursor, statement, *rest: statements.append(statement)  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        [chat] = client.simulate_get("/api/chats", headers=auth).json["items"]
        [message] = client.simulate_get(f"/api/chats/{chat['id']}/messages", headers=auth).json["items"]
        one = client.simulate_get(f"/api/chats/{chat['id']}", headers=auth).json
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert chat["wazzup_chat_id"] == one["wazzup_chat_id"] == "79161234567"
    assert (message["wazzup_message_id"], message["wazzup_is_echo"]) == ("caa1f2b4-cce3-424c-86cd-05f4e2a95073", False)
    assert not [s for s in statements if s.lstrip().startswith("SELECT wazzup_")]


def test_hook_register_fields_refuses_columns_that_do_not_match_its_fields(build_app, pm_with, make_plugin):
    table = sa.Table("sms_flags", sa.MetaData(), sa.Column("chat_id", sa.Integer, primary_key=True),
                     sa.Column("flag", sa.String))
    plugin = make_plugin("sms", register_fields=lambda helpdesk: [
        Item(entity="chat", fields={"sms_flag": fields.String()}, load=lambda conn, ids: {},
             table=table, key=table.c.chat_id, columns={"sms_other": table.c.flag})])
    with pytest.raises(StartupError, match="columns .* must name exactly its fields"):
        build_app(pm_with(plugin))


def _flags_table():
    meta = sa.MetaData()
    flags = sa.Table("sms_flags", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("chat_id", sa.Integer), sa.Column("flag", sa.String))
    other = sa.Table("sms_other", meta, sa.Column("chat_id", sa.Integer, primary_key=True), sa.Column("x", sa.String))
    return flags, other


@pytest.mark.parametrize("case, message", [
    ("no key", "needs its table and key"),
    ("foreign column", r"\['sms_flag'\] are not columns of 'sms_flags'"),
    ("key not unique", "is not unique"),
    ("host column name", "registered twice"),
    ("expression over another table", r"\['sms_flag'\] are not columns of 'sms_flags' nor expressions over it and 'chats'"),
])
def test_hook_register_fields_refuses_joined_field_sets_that_could_break_pages(build_app, pm_with, make_plugin,
                                                                               case, message):
    flags, other = _flags_table()
    item = {"no key": dict(fields={"sms_flag": fields.String()}, table=flags, columns={"sms_flag": flags.c.flag}),
            "foreign column": dict(fields={"sms_flag": fields.String()}, table=flags, key=flags.c.id,
                                   columns={"sms_flag": other.c.x}),
            "key not unique": dict(fields={"sms_flag": fields.String()}, table=flags, key=flags.c.chat_id,
                                   columns={"sms_flag": flags.c.flag}),
            "host column name": dict(fields={"author_agent_id": fields.String()}, table=flags, key=flags.c.id,
                                     columns={"author_agent_id": flags.c.flag}),
            "expression over another table": dict(fields={"sms_flag": fields.String()}, table=flags, key=flags.c.id,
                                                  columns={"sms_flag": sa.func.coalesce(flags.c.flag, other.c.x)})}[case]
    entity = "message" if case == "host column name" else "chat"
    plugin = make_plugin("sms", register_fields=lambda helpdesk: [
        Item(entity=entity, load=lambda conn, ids: {}, **item)])
    with pytest.raises(StartupError, match=message):
        build_app(pm_with(plugin))


def test_hook_register_fields_joins_an_expression_over_its_table_and_the_hosts(build_app, pm_with, make_plugin,
                                                                               make_chat, engine, auth):
    meta = sa.MetaData()
    flags = sa.Table("sms_flags", meta, sa.Column("chat_id", sa.Integer, primary_key=True), sa.Column("flag", sa.String))

    def register_fields(helpdesk):
        chats = helpdesk.tables.chats
        return [Item(entity="chat", fields={"sms_label": fields.String()}, load=lambda conn, ids: {}, table=flags,
                     key=flags.c.chat_id, columns={"sms_label": sa.func.coalesce(flags.c.flag, chats.c.title)})]

    app = build_app(pm_with(make_plugin("sms", register_fields=register_fields)))
    meta.create_all(engine)
    try:
        flagged, plain = make_chat(title="flagged"), make_chat(title="plain")
        with engine.begin() as conn:
            conn.execute(sa.insert(flags).values(chat_id=flagged, flag="VIP"))
        items = falcon.testing.TestClient(app).simulate_get("/api/chats", headers=auth).json["items"]
    finally:
        meta.drop_all(engine)
    assert {c["id"]: c["sms_label"] for c in items} == {flagged: "VIP", plain: "plain"}


def test_serialize_messages_serves_a_field_set_the_row_carries_and_loads_only_the_others(
        build_app, pm_with, make_plugin, make_chat, make_message):
    calls = []

    def load(name):
        def loader(conn, ids):
            calls.append(name)
            return {i: {name: f"loaded-{i}"} for i in ids}
        return loader

    plugin = make_plugin("sms", register_fields=lambda helpdesk: [
        Item(entity="message", fields={"sms_joined": fields.String()}, load=load("sms_joined")),
        Item(entity="message", fields={"sms_loaded": fields.String()}, load=load("sms_loaded"))])
    helpdesk = build_app(pm_with(plugin)).helpdesk
    message_id = make_message(make_chat(title="a"), text="hi")
    m = helpdesk.tables.messages
    with helpdesk.db.read() as conn:
        row = conn.execute(sa.select(m, sa.literal("read by the plugin").label("sms_joined"))
                           .where(m.c.id == message_id)).mappings().one()
        [item] = helpdesk.serialize_messages(conn, [row])
    assert (item["sms_joined"], item["sms_loaded"], item["text"]) == ("read by the plugin", f"loaded-{message_id}", "hi")
    assert calls == ["sms_loaded"]

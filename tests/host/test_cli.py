"""``helpdesk-stub``: database, agents, tokens, plugins, plugin groups, .env, startup errors."""

import os
import subprocess
import sys
from pathlib import Path

import falcon.testing
import pytest
from click.testing import CliRunner

from host_stub.cli import build_cli, main


def test_db_upgrade_applies_the_host_and_plugin_migrations(run):
    result = run("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "database at " in result.output and "_host" in result.output and "_wazzup" in result.output


def test_users_create_reads_the_password_from_stdin(run):
    run("db", "upgrade")
    result = run("users", "create", "bob", "--password-stdin", input="a long password\n")
    assert result.exit_code == 0, result.output
    assert "created agent bob" in result.output


def test_users_create_prompts_for_the_password_twice(run):
    run("db", "upgrade")
    result = run("users", "create", "carol", input="secret password\nsecret password\n")
    assert result.exit_code == 0, result.output
    assert "secret password" not in result.output


def test_users_create_refuses_short_passwords_and_duplicates(run):
    run("db", "upgrade")
    short = run("users", "create", "dave", "--password-stdin", input="short\n")
    assert short.exit_code != 0 and "at least 8 characters" in short.output
    run("users", "create", "dave", "--password-stdin", input="long enough pw\n")
    again = run("users", "create", "dave", "--password-stdin", input="long enough pw\n")
    assert again.exit_code != 0 and "already exists" in again.output


def test_tokens_create_prints_only_a_working_token(run, cli_env, pm_with):
    from host_stub.app import create_app
    from host_stub.config import Config

    run("db", "upgrade")
    run("users", "create", "erin", "--password-stdin", input="long enough pw\n")
    result = CliRunner().invoke(build_cli(pm_with()), ["tokens", "create", "erin"], env=cli_env)
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert result.stdout == token + "\n" and token.startswith("hdt_")
    app = create_app(Config(database_url=cli_env["HELPDESK_DATABASE_URL"]), pm_with())
    client = falcon.testing.TestClient(app)
    assert client.simulate_get("/api/chats", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_tokens_create_for_an_unknown_agent_says_how_to_create_one(run):
    run("db", "upgrade")
    result = run("tokens", "create", "nobody")
    assert result.exit_code != 0 and "helpdesk-stub users create nobody" in result.output


def test_plugins_lists_enabled_plugins_with_versions(run):
    import wazzup_plugin

    result = run("plugins")
    assert result.exit_code == 0
    assert result.stdout == f"wazzup24 {wazzup_plugin.__version__} (contract 1)\n"  # settings warnings: stderr


@pytest.mark.parametrize("command", [("plugins",), ("db", "upgrade")])
def test_plugins_and_db_upgrade_refuse_a_bad_plugin_setting_as_serve_does(cli_env, tmp_path, capsys, command):
    env = {**cli_env, "WAZZUP24_RATE_LIMIT": "lots"}
    os.environ.update(env)
    with pytest.raises(SystemExit) as exit_info:
        main(list(command))
    assert exit_info.value.code == 2
    assert "WAZZUP24_RATE_LIMIT must be a whole number" in capsys.readouterr().err
    assert not (tmp_path / "cli.sqlite3").exists()  # nothing migrated before the refusal


def test_plugin_command_group_is_available(run):
    result = run("wazzup24", "--help")
    assert result.exit_code == 0, result.output
    assert "Wazzup24" in result.output


def test_serve_defaults_to_port_8000(run):
    result = run("serve", "--help")
    assert result.exit_code == 0
    assert "8000" in result.output and "--no-workers" in result.output and "--workers" in result.output


def test_serve_on_a_busy_port_says_so_before_starting_anything(run, monkeypatch):
    import socket
    import subprocess as sp

    started = []
    monkeypatch.setattr(sp, "Popen", lambda *a, **k: started.append(a))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port), "--no-migrate")
    assert result.exit_code == 2, result.output
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.output
    assert "--port" in result.output and started == []


def test_dotenv_is_read_and_the_environment_wins(cli_env, tmp_path, monkeypatch):
    from host_stub.config import Config

    (tmp_path / ".env").write_text("HELPDESK_LOG_LEVEL=DEBUG\nHELPDESK_LOG_FORMAT=json\nWAZZUP24_CHANNEL_ID=from-file\n")
    monkeypatch.setenv("HELPDESK_LOG_FORMAT", "text")
    config = Config.from_env()
    assert config.log_level == "DEBUG"          # from .env
    assert config.log_format == "text"          # the environment wins
    assert config.env["WAZZUP24_CHANNEL_ID"] == "from-file"  # plugins see .env values too


def test_main_reads_dotenv_for_the_commands(cli_env, tmp_path, capsys):
    (tmp_path / ".env").write_text(f"HELPDESK_DATABASE_URL=sqlite:///{tmp_path / 'from-dotenv.sqlite3'}\n")
    main(["db", "upgrade"])
    assert "database at " in capsys.readouterr().out
    assert (tmp_path / "from-dotenv.sqlite3").exists()


def test_an_unreadable_dotenv_line_is_named_without_its_value(cli_env, tmp_path, capsys):
    (tmp_path / ".env").write_text('HELPDESK_LOG_LEVEL=INFO\nWAZZUP24_API_KEY="s3cret-key-value\nWAZZUP24_CHANNEL_ID=x\n')
    err = _refusal(capsys, ("plugins",))
    assert "Error: .env line 2 (WAZZUP24_API_KEY=…) cannot be read: check its quotes" in err
    assert "s3cret-key-value" not in err and "python-dotenv" not in err


def test_main_reports_a_startup_error_clearly(cli_env, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HELPDESK_PLUGINS", "telegram")
    with pytest.raises(SystemExit) as exit_info:
        main(["plugins"])
    assert exit_info.value.code == 2
    assert "Error: HELPDESK_PLUGINS names telegram, which is not installed" in capsys.readouterr().err


def test_main_exits_with_the_code_a_command_exits_with(cli_env, monkeypatch):
    """A command (a plugin's too) may end with ctx.exit(n): the console script exits n, not 0."""
    import click

    import host_stub.cli

    @click.command("give-up")
    @click.pass_context
    def give_up(ctx):
        ctx.exit(3)

    build = host_stub.cli.build_cli

    def build_with_give_up(pm):
        cli = build(pm)
        cli.add_command(give_up)
        return cli

    monkeypatch.setattr(host_stub.cli, "build_cli", build_with_give_up)
    with pytest.raises(SystemExit) as exit_info:
        main(["give-up"])
    assert exit_info.value.code == 3


def test_helpdesk_stub_console_script_runs(tmp_path):
    script = Path(sys.executable).parent / "helpdesk-stub"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELPDESK_", "WAZZUP24_"))}
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env=env)
    assert result.returncode == 0, result.stderr
    for command in ("serve", "db", "users", "tokens", "plugins", "wazzup24"):
        assert command in result.stdout


def test_serve_stops_everything_and_exits_1_when_one_of_its_processes_dies(caplog):
    """A background worker or gunicorn gone alone would leave half a helpdesk running; a process
    manager restarting on failure brings the whole of it back."""
    import signal

    from host_stub.cli import _supervise

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    lasting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dying = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    try:
        with pytest.raises(SystemExit) as exited:
            _supervise([lasting, dying])
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
        lasting.kill()
    assert exited.value.code == 1
    assert lasting.wait(timeout=10) is not None
    assert "exited (code 3)" in caplog.text  # logged (host_stub.serve), so it reaches HELPDESK_LOG_FILE too


def test_a_database_url_whose_driver_is_not_installed_is_a_startup_error_naming_it():
    from host_stub.db import make_engine
    from host_stub.errors import StartupError

    with pytest.raises(StartupError, match=r"needs the 'pg8000' driver.*\.\[postgres\]"):
        make_engine("postgresql+pg8000://postgres@127.0.0.1:5432/test")


def _refusal(capsys, command=("db", "upgrade")) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(command))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_an_unreachable_database_server_is_named_with_the_password_masked(cli_env, capsys):
    url = "postgresql+psycopg://helpdesk:s3cret-pw@127.0.0.1:1/helpdesk"  # nothing listens on port 1
    os.environ.update({**cli_env, "HELPDESK_DATABASE_URL": url})
    err = _refusal(capsys)
    assert ("Error: cannot connect to HELPDESK_DATABASE_URL (postgresql+psycopg://helpdesk:***@127.0.0.1:1/helpdesk): "
            in err)
    assert "s3cret-pw" not in err


def test_a_database_that_does_not_exist_is_named_as_the_setting(cli_env, capsys, database_url, tmp_path):
    import sqlalchemy as sa

    if database_url.startswith("postgresql"):
        url = sa.engine.make_url(database_url).set(database="no_such_helpdesk_db", password="s3cret-pw")
        wrong, reason = url.render_as_string(hide_password=False), 'database "no_such_helpdesk_db" does not exist'
    else:
        wrong, reason = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.sqlite3'}", "unable to open database file"
    os.environ.update({**cli_env, "HELPDESK_DATABASE_URL": wrong})
    err = _refusal(capsys)
    shown = sa.engine.make_url(wrong).render_as_string(hide_password=True)
    assert f"Error: cannot connect to HELPDESK_DATABASE_URL ({shown}): " in err and reason in err
    assert "s3cret-pw" not in err


def test_a_command_run_where_no_helpdesk_database_is_says_where_to_run_it_and_leaves_no_file(cli_env, capsys,
                                                                                              tmp_path):
    # No HELPDESK_DATABASE_URL: the default, helpdesk.sqlite3 in the current folder, which has none.
    err = _refusal(capsys, ("tokens", "create", "alice"))
    assert f"the database at {tmp_path / 'helpdesk.sqlite3'}, from HELPDESK_DATABASE_URL as read in {tmp_path}" in err
    assert "is not set up for the helpdesk (table agents is missing)" in err
    assert "`helpdesk-stub db upgrade`" in err and "cd demo-data" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_postgresql_database_without_the_helpdesks_tables_is_named_as_not_set_up(cli_env, capsys, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's own wording of a missing table (SQLite's: the test above)")
    # The same server, seen through a schema that holds nothing: as a database nobody upgraded.
    empty = f"{database_url}{'&' if '?' in database_url else '?'}options=-csearch_path%3Dno_helpdesk_here"
    os.environ.update({**cli_env, "HELPDESK_DATABASE_URL": empty})
    err = _refusal(capsys, ("tokens", "create", "alice"))
    assert "the database at HELPDESK_DATABASE_URL is not set up for the helpdesk (table agents is missing)" in err
    assert "`helpdesk-stub db upgrade`" in err


def test_a_missing_table_is_recognised_on_both_databases():
    from host_stub.cli import _missing_table

    assert _missing_table(Exception("no such table: wazzup_outbox")) == "wazzup_outbox"
    assert _missing_table(Exception('relation "agents" does not exist\nLINE 1: SELECT ...')) == "agents"
    assert _missing_table(Exception("disk I/O error")) is None


def test_a_log_file_in_a_missing_directory_is_refused_naming_the_setting(cli_env, capsys, tmp_path):
    log_file = tmp_path / "no-such-dir" / "helpdesk.log"
    os.environ.update({**cli_env, "HELPDESK_LOG_FILE": str(log_file)})
    err = _refusal(capsys)
    assert f"Error: HELPDESK_LOG_FILE is '{log_file}', but its directory '{log_file.parent}' does not exist" in err
    assert not (tmp_path / "cli.sqlite3").exists()


def test_db_upgrade_refuses_a_database_whose_schema_differs_from_the_models(cli_env, capsys, tmp_path):
    import sqlite3

    os.environ.update(cli_env)
    main(["db", "upgrade"])
    capsys.readouterr()
    with sqlite3.connect(tmp_path / "cli.sqlite3") as conn:  # at head, yet a column is gone
        conn.execute("ALTER TABLE wazzup_outbox DROP COLUMN last_error")
    err = _refusal(capsys)
    assert "Error: the database schema does not match this version of the helpdesk" in err
    assert "column wazzup_outbox.last_error is missing" in err


def test_serve_without_migrating_refuses_a_database_that_was_never_upgraded(cli_env, tmp_path):
    import sqlite3

    os.environ.update(cli_env)
    main(["db", "upgrade"])
    with sqlite3.connect(tmp_path / "cli.sqlite3") as conn:  # as if this version's migration had not run
        conn.execute("ALTER TABLE wazzup_outbox DROP COLUMN last_error")
    script = Path(sys.executable).parent / "helpdesk-stub"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELPDESK_", "WAZZUP24_"))}
    # Port 9 (discard): never reached, as the refusal comes before gunicorn starts. The timeout bounds
    # the old behaviour, which started serving.
    result = subprocess.run([str(script), "serve", "--no-migrate", "--port", "9"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path, env={**env, **cli_env})
    assert result.returncode == 2, result.stderr
    assert "Error: the database schema does not match this version of the helpdesk" in result.stderr
    assert "column wazzup_outbox.last_error is missing" in result.stderr
    assert "Run `helpdesk-stub db upgrade` first, or start `serve` without --no-migrate" in result.stderr
    assert "Traceback" not in result.stderr

"""``helpdesk-stub``: serve, migrate, manage agents and tokens; plugins add their own groups."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from host_stub.cli_accounts import tokens, users
from host_stub.errors import StartupError

# serve's own lines: through the helpdesk's handler (HELPDESK_LOG_FILE or stderr, text or JSON),
# like gunicorn's and the app's.
_log = logging.getLogger("host_stub.serve")


class CliContext:
    """What commands share: the validated config, the plugin manager, a helpdesk built on first use."""

    def __init__(self, pm):
        self.pm = pm
        self._config = None
        self._helpdesk = None

    @property
    def config(self):
        if self._config is None:
            from host_stub.config import Config
            from host_stub.logging_setup import configure_logging

            self._config = Config.from_env()
            configure_logging(self._config)
        return self._config

    def helpdesk(self):
        if self._helpdesk is None:
            from host_stub.app import create_app

            self._helpdesk = create_app(self.config, self.pm).helpdesk
        return self._helpdesk


def build_cli(pm) -> click.Group:
    @click.group(help="The reference helpdesk with its plugins.")
    @click.pass_context
    def cli(ctx):
        ctx.obj = CliContext(pm)

    cli.add_command(serve)
    cli.add_command(db)
    cli.add_command(users)
    cli.add_command(tokens)
    cli.add_command(plugins)
    pm.hook.register_commands(cli=cli)
    return cli


def main(argv=None) -> None:
    from host_stub.config import read_environment
    from host_stub.plugins import get_plugin_manager

    try:
        # .env may name the plugins to enable; the environment wins over it.
        for key, value in read_environment().items():
            if key.startswith(("HELPDESK_", "WAZZUP24_")):
                os.environ.setdefault(key, value)
    except StartupError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    sqlite_file = _sqlite_file()
    existed = sqlite_file is not None and sqlite_file.exists()
    try:
        cli = build_cli(get_plugin_manager())
        code = cli.main(args=argv, prog_name="helpdesk-stub", standalone_mode=False)
        # Out of standalone mode click returns the code of a command's ctx.exit(n) instead of raising.
        if isinstance(code, int) and not isinstance(code, bool) and code:
            sys.exit(code)
    except StartupError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except _database_errors() as exc:
        missing = _missing_table(exc)
        if missing is None and not isinstance(exc, _operational_error()):
            raise
        if missing is not None and sqlite_file is not None and not existed:
            _remove_if_empty(sqlite_file)
        click.echo(f"Error: {_not_set_up(missing, sqlite_file) if missing else _database_problem(exc)}", err=True)
        sys.exit(2)


def _operational_error():
    """SQLAlchemy's OperationalError (an unreachable server, a database that does not exist, a file
    that cannot be opened), imported only when main() needs it."""
    import sqlalchemy as sa

    return sa.exc.OperationalError


def _database_errors():
    import sqlalchemy as sa

    return (sa.exc.OperationalError, sa.exc.ProgrammingError)


def _database_url_setting() -> str:
    """HELPDESK_DATABASE_URL as the commands read it (from the environment, .env copied in), or its default."""
    from host_stub.config import DEFAULT_DATABASE_URL

    return os.environ.get("HELPDESK_DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL


def _missing_table(exc) -> str | None:
    """The table a statement found missing (SQLite, PostgreSQL), else None."""
    found = re.search(r'no such table: (\w+)|relation "(\w+)" does not exist', str(getattr(exc, "orig", None) or exc))
    return (found.group(1) or found.group(2)) if found else None


def _sqlite_file():
    """The SQLite file HELPDESK_DATABASE_URL names (made absolute from the current folder), else None."""
    import sqlalchemy as sa

    try:
        url = sa.engine.make_url(_database_url_setting())
    except Exception:  # Config.validate words it
        return None
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).resolve()


def _remove_if_empty(sqlite_file) -> None:
    """Remove a SQLite database this command made by connecting (no tables), with its side files
    (WAL, shared memory, the host's writers' lock): a command run in the wrong folder leaves nothing."""
    import sqlite3
    from contextlib import closing

    if not sqlite_file.exists():
        return
    with closing(sqlite3.connect(sqlite_file)) as conn:
        if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            return
    for suffix in ("", "-wal", "-shm", "-journal", "-writers"):
        sqlite_file.with_name(sqlite_file.name + suffix).unlink(missing_ok=True)


def _not_set_up(table: str, sqlite_file) -> str:
    """A command run against a database the helpdesk has not set up: usually the wrong folder."""
    where = (f"{sqlite_file}, from HELPDESK_DATABASE_URL as read in {Path.cwd()}" if sqlite_file is not None
             else "HELPDESK_DATABASE_URL")
    return (f"the database at {where} is not set up for the helpdesk (table {table} is missing). Run this "
            "command where the helpdesk's .env is (the demo's: its data folder, e.g. `cd demo-data`), or set "
            "HELPDESK_DATABASE_URL; a new database is set up by `helpdesk-stub db upgrade` (serve does it "
            "when it starts)")


def _database_problem(exc) -> str:
    """An OperationalError worded for the operator: the setting, its URL without the password, the reason."""
    import sqlalchemy as sa

    from host_stub.config import shown_database_url

    raw = _database_url_setting()
    try:
        parsed = sa.engine.make_url(raw)
        url, password = parsed.render_as_string(hide_password=True), parsed.password
    except Exception:  # not parseable: Config.validate names it; never echo what may hold a password
        url, password = shown_database_url(raw), None
    reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
    if password:
        reason = reason.replace(str(password), "***")
    if exc.statement is None:  # raised while connecting, before any statement ran
        return f"cannot connect to HELPDESK_DATABASE_URL ({url}): {reason}"
    return f"the database at HELPDESK_DATABASE_URL ({url}) failed: {reason}"


@click.command(help="Run the helpdesk under gunicorn (and the plugins' background workers).")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on (0.0.0.0: all)")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="gunicorn workers")
@click.option("--no-workers", "no_background", is_flag=True, help="do not start the plugins' background workers")
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="apply migrations first")
@click.pass_obj
def serve(obj: CliContext, host, port, workers, no_background, migrate):
    helpdesk = obj.helpdesk()  # validates settings and plugins before anything starts
    _refuse_a_busy_address(host, port)
    from host_stub.migrate import check_schema, upgrade

    if migrate:
        upgrade(helpdesk.db.engine, obj.pm)  # checks the schema it leaves
    else:
        # A deploy that migrates in a step of its own and forgot it would otherwise answer 503 on
        # every page that reads a new column: refuse to start instead, naming what is missing.
        check_schema(helpdesk.db.engine, obj.pm, migrated=False)
    # HELPDESK_REQUEST_TIMEOUT bounds a request (--timeout) and how long a stop lets the requests in
    # progress finish (--graceful-timeout): a plugin's call out (Wazzup24: a send) is never cut off
    # by a restart, and its settings are checked to fit under it.
    seconds = obj.config.request_timeout_seconds
    children = _dies_with_parent()
    procs = [subprocess.Popen([
        sys.executable, "-m", "gunicorn", "--no-control-socket", "--workers", str(workers),
        "--bind", f"{host}:{port}", "--access-logfile", "-",
        "--timeout", str(seconds), "--graceful-timeout", str(seconds),
        "--logger-class", "host_stub.gunicorn_logging.MaskingLogger", "host_stub.wsgi:create_wsgi_app()"],
        preexec_fn=children)]
    if not no_background:
        for worker in helpdesk.registrations.workers:
            _log.info("starting background worker %s", worker.name)
            procs.append(subprocess.Popen([sys.executable, "-m", "host_stub", *worker.argv], preexec_fn=children))
    _log.info("Helpdesk listening on http://%s:%s/", host, port)
    # gunicorn gives up on its requests after `seconds`; a background worker finishes its call in as
    # long. serve waits a little longer before it kills what is left.
    _supervise(procs, stop_seconds=seconds + STOP_MARGIN_SECONDS)


def _refuse_a_busy_address(host: str, port: int) -> None:
    """Say so before starting anything: gunicorn would retry, log five tracebacks and exit, after
    serve had said it was listening."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {host}: {exc.strerror or exc}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As gunicorn binds: connections a previous run left in TIME_WAIT do not make the port busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise click.UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (another server "
                                   "there? choose another port with --port)") from None


STOP_MARGIN_SECONDS = 5
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _dies_with_parent():
    """A ``preexec_fn`` for serve's children.

    Each gets a process group of its own, so a Ctrl-C in the terminal reaches serve alone, which
    stops them with SIGTERM (gunicorn takes SIGINT as a quick shutdown that cuts requests off).
    On Linux each is also sent SIGTERM when serve dies, even by SIGKILL (the OOM killer):
    ``prctl(PR_SET_PDEATHSIG)``. gunicorn then drains and frees the port, a background worker stops
    after its call, and a restarted serve finds nothing left behind. Elsewhere a process manager
    that stops the whole group (systemd's KillMode=control-group) has to do it."""
    prctl = None
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child
        except (OSError, AttributeError):
            prctl = None
    parent = os.getpid()

    def preexec():
        os.setpgid(0, 0)
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            if os.getppid() != parent:  # serve died between the fork and prctl: nobody would signal us
                os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _describe(process) -> str:
    """One of serve's processes, for its log lines."""
    args = [str(a) for a in process.args]
    if args[1:3] == ["-m", "gunicorn"]:
        what = "gunicorn"
    elif args[1:3] == ["-m", "host_stub"]:
        what = "background worker `helpdesk-stub " + " ".join(args[3:]) + "`"
    else:
        what = " ".join(args[:6])
    return f"{what} (pid {process.pid})"


def _supervise(procs, stop_seconds: float = 15.0) -> None:
    """Wait until one process exits or we are asked to stop; then stop them all: SIGTERM, and
    SIGKILL (logged) for any still running ``stop_seconds`` later.

    A process that exits by itself (gunicorn, a background worker) takes the others down with it,
    says so, and makes serve exit 1: a process manager restarting on failure then brings the whole
    helpdesk back, instead of one half running without the other."""
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    previous = signal.signal(signal.SIGTERM, stop), signal.signal(signal.SIGINT, stop)
    died = None
    try:
        while not stopping and died is None:
            died = next((p for p in procs if p.poll() is not None), None)
            if died is None:
                time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        asked = time.monotonic()
        deadline = asked + stop_seconds
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _log.error("%s did not stop within %.0f s of SIGTERM: sending SIGKILL (work in progress is lost; "
                           "raise HELPDESK_REQUEST_TIMEOUT if this happens on ordinary restarts)",
                           _describe(p), time.monotonic() - asked)
                p.kill()
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    if died is not None and not stopping:
        command = " ".join(str(a) for a in died.args[:6])
        _log.error("a process of the helpdesk exited (code %s): %s; every other one was stopped",
                   died.returncode, command)
        raise SystemExit(1)


@click.group(help="Database schema.")
def db():
    pass


@db.command("upgrade", help="Apply the host's and every enabled plugin's migrations.")
@click.pass_obj
def db_upgrade(obj: CliContext):
    from host_stub.migrate import upgrade

    # Settings are validated as serve validates them: a deploy that migrates first stops at its
    # first step on a bad setting, not after the schema has moved.
    heads = upgrade(obj.helpdesk().db.engine, obj.pm)
    click.echo("database at " + ", ".join(heads))


@click.command(help="List the enabled plugins with their versions (after checking their settings).")
@click.pass_obj
def plugins(obj: CliContext):
    from host_stub.plugins import plugin_manifests

    obj.helpdesk()  # the enabled plugins' settings are checked as serve checks them
    found = plugin_manifests(obj.pm)
    if not found:
        click.echo("no plugins enabled")
    for m in found:
        click.echo(f"{m['name']} {m['version']} (contract {m['contract']})")

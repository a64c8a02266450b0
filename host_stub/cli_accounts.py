"""``helpdesk-stub users`` and ``helpdesk-stub tokens``: the agents who sign in and their API tokens.

Every value is checked before the database is touched, against what sign-in accepts and what the
columns hold: a refused command leaves nothing behind and says which limit it broke. Listings show
no password hash, no token and no token digest. Deactivating an agent or setting their password
ends their UI sessions; a deactivated agent's API tokens are refused until they are activated again.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from datetime import timedelta
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from host_stub.cli import CliContext

# The database's integer ids (PostgreSQL's integer): a larger one names no token.
_MAX_ID = 2**31 - 1


def _check(what: str, value: str, low: int, high: int, controls: bool = True) -> None:
    """Refuse a value the helpdesk could not store, or an agent could not sign in with."""
    if len(value) < low:
        raise click.UsageError(f"{what} must not be empty" if low == 1 else f"{what} must be at least {low} characters")
    if len(value) > high:
        raise click.UsageError(f"{what} is {len(value)} characters long; at most {high} are allowed")
    if not _utf8(value):
        raise click.UsageError(f"{what} is not valid UTF-8 text")
    if controls and any(unicodedata.category(c) == "Cc" for c in value):
        raise click.UsageError(f"{what} must not contain control characters (tabs, line breaks, escapes)")


def _utf8(text: str) -> bool:
    """False for text holding bytes that were not UTF-8 (Python decodes them to lone surrogates)."""
    return not any(unicodedata.category(c) == "Cs" for c in text)


def _check_name(name: str) -> None:
    from host_stub.auth import USERNAME_MAX_LENGTH

    _check("the agent's name", name, 1, USERNAME_MAX_LENGTH)
    if name != name.strip():
        raise click.UsageError("the agent's name must not begin or end with a space")


def _column_length(table, column: str) -> int:
    return table.__table__.c[column].type.length


def _new_password(password_stdin: bool) -> str:
    from host_stub.auth import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    _check("the password", password, PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH, controls=False)
    return password


def _agent(conn, name: str):
    """The agent named ``name`` (``id``, ``is_active``); a UsageError when there is none."""
    import sqlalchemy as sa

    from host_stub.models import Agent

    agents, row = Agent.__table__, None
    if _utf8(name):  # else no database could have stored it
        row = conn.execute(sa.select(agents.c.id, agents.c.is_active).where(agents.c.username == name)).first()
    if row is None:
        raise click.UsageError(f"no agent named {name!r}; `helpdesk-stub users list` shows the agents, "
                               f"`helpdesk-stub users create {name}` creates one")
    return row


def _end_sessions(conn, agent_id: int) -> int:
    """Sign the agent out of every UI session; returns how many there were."""
    import sqlalchemy as sa

    from host_stub.models import AgentSession

    sessions = AgentSession.__table__
    return conn.execute(sa.delete(sessions).where(sessions.c.agent_id == agent_id)).rowcount


def _show(key: str, items: list[dict], columns: dict, as_json: bool, empty: str) -> None:
    """``items`` as one JSON object ``{key: items}``, or as a table: ``columns`` maps each heading to
    the text of an item's cell."""
    if as_json:
        # ASCII: a lone surrogate cannot be written to stdout, and control characters stay escapes.
        click.echo(json.dumps({key: items}, ensure_ascii=True))
        return
    if not items:
        click.echo(empty)
        return
    rows = [list(columns)] + [[_printable(cell(item)) for cell in columns.values()] for item in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        click.echo("  ".join(text.ljust(width) for text, width in zip(row, widths)).rstrip())


def _printable(text: str) -> str:
    """A name as a terminal shows it: what a terminal would act on (escapes, line breaks) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _when(iso: str | None) -> str:
    """An item's ISO 8601 UTC time, to the minute; None: never."""
    return iso[:16].replace("T", " ") + " UTC" if iso else "never"


@click.group(help="Agents who sign in to the helpdesk.")
def users():
    pass


@users.command("create", help="Create an agent; the password comes from a prompt or --password-stdin.")
@click.argument("name")
@click.option("--display-name", default="", help="name shown to colleagues (default: NAME)")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@click.pass_obj
def users_create(obj: CliContext, name, display_name, password_stdin):
    import sqlalchemy as sa

    from host_stub.auth import create_agent
    from host_stub.models import Agent

    _check_name(name)
    _check("the display name", display_name, 0, _column_length(Agent, "display_name"))
    password = _new_password(password_stdin)
    helpdesk = obj.helpdesk()
    try:
        with helpdesk.db.write() as tx:
            agent_id = create_agent(tx.conn, name, password, display_name, helpdesk.clock())
    except sa.exc.IntegrityError:
        raise click.UsageError(f"an agent named {name!r} already exists") from None
    click.echo(f"created agent {name} (id {agent_id})", err=True)


@users.command("list", help="List the agents: name, display name, active or not, when created.")
@click.option("--json", "as_json", is_flag=True, help='one JSON object: {"agents": [...]}')
@click.pass_obj
def users_list(obj: CliContext, as_json):
    import sqlalchemy as sa

    from host_stub.models import Agent

    agents = Agent.__table__
    with obj.helpdesk().db.read() as conn:
        rows = conn.execute(sa.select(agents.c.username, agents.c.display_name, agents.c.is_active,
                                      agents.c.created_at).order_by(agents.c.username)).all()
    items = [{"name": r.username, "display_name": r.display_name, "active": r.is_active,
              "created_at": r.created_at.isoformat()} for r in rows]
    columns = {"NAME": lambda i: i["name"], "DISPLAY NAME": lambda i: i["display_name"],
               "STATE": lambda i: "active" if i["active"] else "inactive",
               "CREATED": lambda i: _when(i["created_at"])}
    _show("agents", items, columns, as_json, "No agents yet; create one with `helpdesk-stub users create NAME`.")


def _activation_command(command: str, active: bool, help: str) -> click.Command:
    """``users activate`` or ``users deactivate`` (which also ends the agent's UI sessions)."""

    @users.command(command, help=help)
    @click.argument("name")
    @click.pass_obj
    def set_active(obj: CliContext, name):
        import sqlalchemy as sa

        from host_stub.models import Agent

        agents = Agent.__table__
        helpdesk = obj.helpdesk()
        with helpdesk.db.write() as tx:
            agent = _agent(tx.conn, name)
            tx.conn.execute(sa.update(agents).where(agents.c.id == agent.id).values(is_active=active))
            ended = 0 if active else _end_sessions(tx.conn, agent.id)
        if agent.is_active == active:
            click.echo(f"agent {name} was {'active' if active else 'deactivated'} already", err=True)
            return
        helpdesk.agents_access_changed({agent.id}, active)  # committed, and a real change: the plugins hear of it
        if active:
            click.echo(f"activated agent {name}: they can sign in, and their API tokens that are neither revoked "
                       "nor expired work again", err=True)
        else:
            click.echo(f"deactivated agent {name}: signed out of {ended} UI session(s); they cannot sign in and "
                       f"their API tokens are refused until `helpdesk-stub users activate {name}`", err=True)

    return set_active


users_deactivate = _activation_command("deactivate", False, "Stop an agent from signing in: ends their UI "
                                       "sessions, and their API tokens are refused until they are activated again.")
users_activate = _activation_command("activate", True, "Let a deactivated agent sign in again; their API tokens "
                                     "that are neither revoked nor expired work again.")


@users.command("set-password", help="Set an agent's password (from a prompt or --password-stdin); ends their "
                                    "UI sessions. Their API tokens stay valid.")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@click.pass_obj
def users_set_password(obj: CliContext, name, password_stdin):
    import sqlalchemy as sa

    from host_stub.auth import hash_password
    from host_stub.models import Agent

    helpdesk = obj.helpdesk()
    with helpdesk.db.read() as conn:
        _agent(conn, name)  # a mistyped name is told before the password is asked for
    password_hash = hash_password(_new_password(password_stdin))  # slow on purpose: outside the write
    agents = Agent.__table__
    with helpdesk.db.write() as tx:
        agent = _agent(tx.conn, name)
        tx.conn.execute(sa.update(agents).where(agents.c.id == agent.id).values(password_hash=password_hash))
        ended = _end_sessions(tx.conn, agent.id)
    click.echo(f"set the password of agent {name}; signed out of {ended} UI session(s)", err=True)


@click.group(help="API tokens for integrations.")
def tokens():
    pass


@tokens.command("create", help="Create an API token for agent NAME; prints only the token.")
@click.argument("name")
@click.option("--label", default="cli", show_default=True, help="what the token is for (at most 200 characters)")
@click.option("--days", type=click.IntRange(1, 3650), default=None, help="expire after this many days")
@click.pass_obj
def tokens_create(obj: CliContext, name, label, days):
    from host_stub.auth import create_token
    from host_stub.models import ApiToken

    _check("the label", label, 1, _column_length(ApiToken, "name"))
    helpdesk = obj.helpdesk()
    with helpdesk.db.write() as tx:
        agent = _agent(tx.conn, name)
        if not agent.is_active:
            raise click.UsageError(f"agent {name} is deactivated, so a token would be refused; "
                                   f"`helpdesk-stub users activate {name}` first")
        token = create_token(tx.conn, agent.id, label, helpdesk.clock(), timedelta(days=days) if days else None)
    click.echo(token)


@tokens.command("list", help="List API tokens (of agent NAME, or all): id, agent, label, created, expires, state. "
                             "Never the tokens themselves.")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help='one JSON object: {"tokens": [...]}')
@click.pass_obj
def tokens_list(obj: CliContext, name, as_json):
    import sqlalchemy as sa

    from host_stub.models import Agent, ApiToken

    t, a = ApiToken.__table__, Agent.__table__
    query = (sa.select(t.c.id, a.c.username, a.c.is_active, t.c.name, t.c.created_at, t.c.expires_at,
                       t.c.revoked_at).join(a, a.c.id == t.c.agent_id).order_by(t.c.id))
    helpdesk = obj.helpdesk()
    now = helpdesk.clock()
    with helpdesk.db.read() as conn:
        if name is not None:
            query = query.where(t.c.agent_id == _agent(conn, name).id)
        rows = conn.execute(query).all()
    items = [{"id": r.id, "agent": r.username, "label": r.name, "created_at": r.created_at.isoformat(),
              "expires_at": r.expires_at and r.expires_at.isoformat(),
              "revoked_at": r.revoked_at and r.revoked_at.isoformat(), "state": _token_state(r, now)}
             for r in rows]
    columns = {"ID": lambda i: str(i["id"]), "AGENT": lambda i: i["agent"], "LABEL": lambda i: i["label"],
               "CREATED": lambda i: _when(i["created_at"]), "EXPIRES": lambda i: _when(i["expires_at"]),
               "STATE": lambda i: i["state"]}
    whose = f" for agent {name}" if name is not None else ""
    _show("tokens", items, columns, as_json,
          f"No API tokens{whose}; create one with `helpdesk-stub tokens create NAME`.")


def _token_state(row, now) -> str:
    """active, expired or revoked; agent-inactive: a token that would be active but its agent is deactivated."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active" if row.is_active else "agent-inactive"


@tokens.command("revoke", help="Revoke API tokens by id (`tokens list` shows the ids): they are refused from then "
                               "on, for good. Revoking a revoked token changes nothing.")
@click.argument("ids", nargs=-1, required=True, type=click.IntRange(1), metavar="ID [ID...]")
@click.pass_obj
def tokens_revoke(obj: CliContext, ids):
    import sqlalchemy as sa

    from host_stub.models import ApiToken

    t = ApiToken.__table__
    wanted = sorted(set(ids))
    helpdesk = obj.helpdesk()
    with helpdesk.db.write() as tx:
        found = dict(tx.conn.execute(sa.select(t.c.id, t.c.revoked_at)
                                     .where(t.c.id.in_([i for i in wanted if i <= _MAX_ID]))).all())
        missing = [str(i) for i in wanted if i not in found]
        if missing:
            raise click.UsageError(f"no API token with id {', '.join(missing)} (`helpdesk-stub tokens list` shows "
                                   "them); nothing was revoked")
        tx.conn.execute(sa.update(t).where(t.c.id.in_(wanted), t.c.revoked_at.is_(None))
                        .values(revoked_at=helpdesk.clock()))
    for i in wanted:
        click.echo(f"token {i}: {'revoked' if found[i] is None else 'revoked already'}", err=True)

"""The contract between a helpdesk and its channel plugins.

This file is the whole contract. A helpdesk that implements these hooks, and hands plugins the
``helpdesk`` facade described below, can host any plugin written for it; a plugin reaches the
host only through the arguments of these hooks.

Plugins are pluggy plugins registered under the entry point group ``helpdesk``. Each plugin
module carries a manifest::

    HELPDESK_MANIFEST = {"name": "wazzup24", "version": "0.1.0", "contract": "1"}

and the host refuses a plugin whose ``contract`` is not :data:`CONTRACT_VERSION`.

Hook implementations are marked with ``pluggy.HookimplMarker("helpdesk")`` (the marker matches by
project name, so a plugin needs no import from the host) and accept only the arguments they use.

The ``helpdesk`` argument is a facade with these attributes (see ``host_stub.app.Helpdesk``):

``config``
    The host's validated configuration; ``config.env`` is the mapping of settings (the process
    environment over the ``.env`` file) in which plugins find their own ``PREFIX_*`` settings.
``db``
    The database: ``db.engine``, ``db.read()`` (a connection for reads: a read transaction on
    SQLite; on PostgreSQL autocommit, each statement its own READ COMMITTED snapshot as in a
    transaction, so a server-side cursor (``stream_results``), row locks or one snapshot across
    statements need a transaction of their own: ``db.engine.begin()``),
    ``db.write()`` (a write transaction: ``BEGIN IMMEDIATE`` on SQLite, yields a ``WriteTx`` with
    ``.conn``, ``.change_seq`` — the value to stamp on every chat and message row written — and
    ``.touched(chat_ids=..., message_ids=...)`` to report what changed), and on PostgreSQL
    ``db.write_one_statement()`` (a write made of one statement that commits by itself, with no
    ``BEGIN``/``COMMIT`` round trips: its ``WriteTx`` has no ``.change_seq`` of its own; the statement
    takes the counter through ``tx.change_seq_cte()``, a CTE with ``value`` and ``seen``;
    ``value != seen + 1`` means the statement's snapshot predates a write that committed while it
    waited for the counter; ``tx.change_seq_cte(only_if=condition)`` takes it only when the
    condition holds in the statement's snapshot, so one statement can look up and then write, or
    write nothing).
``tables``
    The host's SQLAlchemy tables: ``chats``, ``messages``, ``agents``.
``metadata``
    The ``sqlalchemy.MetaData`` holding host and plugin tables.
``http``
    A ``requests.Session`` for outgoing calls (tests replace it).
``clock``
    A callable returning the current time as an aware UTC ``datetime`` (tests replace it).
``chat_types``
    The registry of chat types (``get(name)``, ``names()``).
``plugin_state``
    A dict keyed by plugin name where a plugin keeps objects it built in ``startup``.
``serialize_chats(conn, rows)`` / ``serialize_messages(conn, rows)``
    Rows of ``tables.chats`` / ``tables.messages`` as the API serves them, every plugin's fields
    included, so a plugin's own routes answer with exactly the host's JSON.
"""

from __future__ import annotations

import pluggy

PROJECT = "helpdesk"
CONTRACT_VERSION = "1"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_chat_types(helpdesk):
    """Return a list of chat type objects this plugin provides.

    Called once while the app is built. A chat type has ``name`` (the value stored in
    ``chats.type``, unique across plugins: a duplicate stops startup), ``label`` (shown to
    agents) and ``icon`` (a URL path of an image served through ``register_ui``), and may have
    ``panel`` (the name of a UI panel, see ``register_ui``) and ``can_compose`` (whether agents
    may write in such chats). The host's own types register through this same hook.
    """


@hookspec
def register_schema(metadata):
    """Define this plugin's tables on ``metadata`` and return its Alembic versions directory.

    Called once per ``MetaData`` when the schema is assembled (by the app, by the CLI's ``db``
    commands and by migrations), so the implementation must be idempotent: reuse a table that is
    already in ``metadata.tables``. Table names carry the plugin's prefix (``wazzup_*``); a plugin
    never adds columns to host tables and links its rows 1:1 to host rows by foreign key.
    Return the absolute path (``str``) of a directory of Alembic revisions whose first revision
    carries the plugin's branch label (``down_revision = None``, no ``depends_on``: a plugin
    cannot name the revisions of a helpdesk it does not know), or ``None``. So the order is the
    host's to keep, and ``alembic upgrade heads`` alone does not know it: upgrade the host's own
    branch first, then every plugin's (``helpdesk-stub db upgrade`` does); downgrade in the
    reverse order, plugins first. A plugin's tables may have foreign keys to the host's
    ``chats``, ``messages`` and ``agents``.
    """


@hookspec
def register_fields(helpdesk):
    """Return a list of field sets adding plugin fields to the JSON of chats and messages.

    Each item has ``entity`` (``"chat"`` or ``"message"``), ``fields`` (a dict of flat, prefixed
    names such as ``wazzup_chat_id`` to marshmallow fields, used for output and the OpenAPI
    document) and ``load(conn, ids)`` returning ``{id: {name: value}}`` for a batch of ids in
    one query (the host calls it once per page, never once per row). A field name used twice
    stops startup.

    Optionally, when the fields are columns of one plugin table with at most one row per chat or
    message, the item also has ``table``, ``key`` (that table's column equal to the chat's or
    message's id) and ``columns`` (field name to column, for exactly the names in ``fields``):
    the host then outer-joins the table into its page queries and does not call ``load`` for them.
    """


@hookspec
def register_routes(helpdesk):
    """Return a list of routes this plugin serves.

    Each route has ``template`` (a Falcon URI template under ``/api/<plugin segment>/`` or
    ``/api/chats/{chat_id:int}/<plugin segment>/``; the one exception a plugin may make is an
    address fixed by the outside world, such as a webhook URL a specification names: Wazzup24's
    ``/api/webhook``, also served as ``/api/wazzup24/webhook``), ``resource`` (a Falcon resource), optional
    ``suffix`` and ``public`` (``False`` by default: the host then requires an authenticated
    agent, available to the responder as ``req.context.agent``; ``True`` for callbacks such as
    webhooks). Resources may set ``openapi = {"get": {...}, ...}`` operation objects (schemas
    given as marshmallow classes) for the OpenAPI document. A template used twice stops startup.

    For every route the host answers ``HEAD`` with the ``GET`` responder (no body); takes request
    bodies read through ``req.get_media()`` as JSON in UTF-8 only (anything else answers 415
    ``unsupported_media_type``; a resource that reads ``req.bounded_stream`` itself is not
    affected); and answers a path id too large for any id column with 404 before the responder
    runs: ``chat_not_found`` for ``{chat_id}``, ``message_not_found`` for ``{message_id}``. A
    plugin answers a chat or message that does not exist with the same codes.
    """


@hookspec
def register_commands(cli):
    """Add this plugin's command group to the ``helpdesk-stub`` click group ``cli``.

    Called when the CLI is built, before any command runs. Commands reach the helpdesk through
    ``click.get_current_context().obj.helpdesk()`` (built on first use) and read settings from
    ``obj.config``.
    """


@hookspec
def register_ui(helpdesk):
    """Return the UI assets this plugin adds to the agent UI, or ``None``.

    An object with ``name`` (URL segment: files are served at ``/static/plugins/<name>/``),
    ``static_dir`` (an absolute directory path), ``scripts`` and ``styles`` (file names inside
    ``static_dir`` loaded by every page). A script registers panels with the page's
    ``window.helpdesk.registerPanel(name, factory)``; a chat type whose ``panel`` names it gets
    that panel under its chat view.
    """


@hookspec
def register_workers(helpdesk):
    """Return a list of background workers that ``helpdesk-stub serve`` runs beside the web server.

    Each worker has ``name`` and ``argv`` (the ``helpdesk-stub`` arguments that run it, e.g.
    ``["wazzup24", "worker"]``); ``serve`` starts one process per worker unless started with
    ``--no-workers``, and stops it on shutdown.
    """


@hookspec
def startup(helpdesk):
    """Called once after the app is built, before it serves a request.

    Validate settings here and raise ``host_stub.StartupError`` (any exception with a message
    naming the setting to fix) to refuse to start; build long-lived objects (clients, caches)
    and keep them in ``helpdesk.plugin_state``. Return value ignored.
    """


@hookspec
def changes_committed(helpdesk, chat_ids, message_ids):
    """Called after a write transaction that created or changed chats or messages commits.

    ``chat_ids`` and ``message_ids`` are sets of host ids. Runs in the request's thread, so keep
    it fast (enqueue, do not send). Return value ignored; an exception is logged, never raised
    to the writer whose data is already committed.
    """

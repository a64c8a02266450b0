"""The contract between a helpdesk and its channel plugins.

This file is the whole contract. A helpdesk that implements these hooks, and hands plugins the
``helpdesk`` facade and the host tables described below, can host any plugin written for it; a
plugin reaches the host only through the arguments of these hooks.

Plugins are pluggy plugins registered under the entry point group ``helpdesk``. Each plugin
module carries a manifest::

    HELPDESK_MANIFEST = {"name": "wazzup24", "version": "0.1.0", "contract": "1"}

and the host refuses a plugin whose ``contract`` is not :data:`CONTRACT_VERSION`.

Hook implementations are marked with ``pluggy.HookimplMarker("helpdesk")`` (the marker matches by
project name, so a plugin needs no import from the host) and accept only the arguments they use.

Startup. The host calls ``register_log_masks`` as it loads the plugins; ``register_schema`` while it
assembles its ``MetaData``; then, building the app, ``register_chat_types``, ``register_fields``,
``register_routes``, ``register_ui`` and ``register_workers``; then ``startup``. Any of these last six
may raise to refuse startup: the host must then not start, and must show the exception's message (a log
mask that cannot mask refuses it too). A plugin cannot import the host's exception
classes, so it raises a ``ValueError`` whose message names what to fix (a setting, a host table);
it validates its settings in the first of these hooks that needs them (the Wazzup24 plugin: in
``register_fields``). The reference host reports a ``ValueError``'s message as is, as its
``host_stub.StartupError``, and any other exception as "a plugin failed while the helpdesk was built:
<type>: <message>".

The ``helpdesk`` argument is a facade with these attributes (see ``host_stub.app.Helpdesk``; the
Wazzup24 plugin's ``wazzup_plugin/host.py`` restates them as protocols):

``config``
    The host's validated configuration. ``config.env``: the mapping of settings (the process
    environment over the ``.env`` file) in which plugins find their own ``PREFIX_*`` settings.
    ``config.max_body_bytes``: the largest request body the host accepts, in bytes (an ``int``). The
    host answers a larger one 413 ``payload_too_large`` before any resource runs (the reference
    host: by its ``Content-Length``, or by reading a chunked body to one byte past the limit); a
    resource that reads a body itself enforces the limit too.
    ``config.request_timeout_seconds``: the longest a request may run, in seconds (an ``int`` or
    ``float``; the reference host: ``HELPDESK_REQUEST_TIMEOUT``, 60 by default, gunicorn's
    ``--timeout``, and how long a stop waits for work in progress). A plugin keeps what it does
    inside a request (a call out, with its retries) under it; the Wazzup24 plugin refuses to start
    when one send to Wazzup could outlast it, and assumes 60 on a host without the attribute.
``db``
    The database: SQLite or PostgreSQL, the only two plugins support. ``db.dialect``: the
    SQLAlchemy dialect's name as a ``str``, ``"sqlite"`` or ``"postgresql"``. ``db.engine``: the
    SQLAlchemy engine. On SQLite the database is in WAL mode, so readers (other threads and
    processes) never hold up a writer's commit, nor it them; ``read()`` and ``write()`` each take
    a connection of their own, so a plugin may open a ``write()`` while the same thread holds a
    ``read()``.

    ``db.read()``: a connection for reads: a read transaction on SQLite; on PostgreSQL autocommit,
    each statement its own READ COMMITTED snapshot as in a transaction, so a server-side cursor
    (``stream_results``), row locks or one snapshot across statements need a transaction of their
    own: ``db.engine.begin()``.

    ``db.write()``: a write transaction (``BEGIN IMMEDIATE`` on SQLite: writers queue at its start)
    yielding a ``WriteTx`` with ``tx.conn``; ``tx.touched(chat_ids=..., message_ids=...)`` to report
    the chats and messages it created or changed (``changes_committed`` gets them after the commit);
    and ``tx.change_seq``, the value of the host's change counter to stamp as ``change_seq`` on
    every chat and message row it writes. ``tx.change_seq`` is taken lazily, on first access, and is
    one value per transaction (later accesses return it); taking it locks the counter's one row until
    the transaction ends, so values become visible in commit order and every writer that has taken
    it waits until this one commits. Plugins rely on that lock, not only on the value: the Wazzup24
    plugin takes it first in every write that touches chats or messages, so that such writes queue
    there (on PostgreSQL nothing else serialises them), and it decides what to park (a status that
    arrives before its message) and looks for what is parked only while holding it. A counter drawn
    from a sequence (which neither locks nor commits in order) breaks both.

    ``db.write_one_statement()``, required on PostgreSQL (never called on SQLite): a write made of
    one statement that commits by itself, with no ``BEGIN``/``COMMIT`` round trips. Its ``WriteTx``
    runs each statement in autocommit and has ``conn`` and ``touched()`` (announced when the block
    ends, even if it then raises) but no ``change_seq`` of its own: the one statement that writes
    takes the counter through ``tx.change_seq_cte()``, a CTE named ``change_seq`` with columns
    ``value`` (the value taken; its row stays locked until the statement commits) and ``seen`` (the
    counter in the statement's snapshot); ``value != seen + 1`` means the snapshot predates a write
    that committed while it waited for the counter. No row: the counter does not exist yet, or the
    condition was false: ``tx.change_seq_cte(only_if=condition)`` takes it only when the condition
    holds in the statement's snapshot, so one statement can look up and then write, or write nothing.
``tables``
    The host's SQLAlchemy Core tables ``tables.chats``, ``tables.messages`` and ``tables.agents``:
    see "Host tables" below.
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
    included, so a plugin's own routes answer with exactly the host's JSON. ``rows`` are mappings
    (``dict`` or ``result.mappings()`` rows, not attribute-style rows) holding every column of the
    table, as ``select(table)`` reads them. A row may also carry every field of a field set (see
    ``register_fields``) under the fields' names, read by the caller (a plugin joining its own
    table into its query); the host serves those values as given and loads only the other sets.

Host tables. ``tables.chats``, ``tables.messages`` and ``tables.agents`` are the tables named
exactly ``chats``, ``messages`` and ``agents`` in ``metadata``, in the schema of the plugins' tables
(plugins declare foreign keys to ``chats.id``, ``messages.id`` and ``agents.id`` by those names),
each with the integer primary key ``id``. Plugins write ``chats`` and ``messages`` rows directly:
they insert them, update them, and delete the copies they lose in races; a plugin may also move a
chat's messages into another chat of its type and delete the emptied chat (the Wazzup24 plugin does,
when a chat it started by phone or username turns out to be one the helpdesk has). Logic the host must run on
every change of those rows therefore belongs in the database (defaults, constraints, triggers) or in
``changes_committed``, never in the host's own write path alone. The columns plugins read or write
(the Wazzup24 plugin refuses to start without them: ``wazzup_plugin.host.HOST_COLUMNS``)::

    chats:
        id                    int        key
        type                  str(32)    set    a registered chat type's name: 'wazzup'
        title                 str(300)   set    the contact's name, else the phone or chat id; a group's set once
        phone                 str(32)    NULL   digits only
        avatar_uri            str(2000)  NULL   an http(s) URL
        unread_count          int        set    0 at first; + each incoming message
        last_message_at       datetime   NULL   NULL until the first message
        last_message_preview  str(200)   set    '' at first
        last_activity_at      datetime   set    the last message's time, else created_at
        created_at            datetime   set
        change_seq            int        set    tx.change_seq of the write
    messages:
        id                    int        key
        chat_id               int        set    chats.id
        direction             str(8)     set    'in' or 'out'
        status                str(16)    set    inbound queued accepted sent delivered read failed unknown
        type                  str(32)    set    text image video audio document vcard geo ...
        text                  text       NULL   NULL for a file
        content_uri           str(2000)  NULL   a file's http(s) URL
        content_name          str(500)   NULL   its file name
        content_type          str(200)   NULL*  its MIME type, guessed from the name
        author_agent_id       int        NULL*  agents.id of the agent who sent it
        author_name           str(300)   NULL   the author's name (an agent's display_name or username)
        messenger_at          datetime   NULL*  when the messenger says it was written
        created_at            datetime   set    when it was stored
        queued_at             datetime   NULL   each <status>_at: when it reached that status
        accepted_at           datetime   NULL*
        sent_at               datetime   NULL*
        delivered_at          datetime   NULL*
        read_at               datetime   NULL*
        failed_at             datetime   NULL*
        unknown_at            datetime   NULL*
        error_code            str(100)   NULL*  why it failed: a code
        error_text            str(1000)  NULL*  why it failed: for people
        edited_at             datetime   NULL*
        deleted_at            datetime   NULL*
        previous_text         text       NULL*  the text before the edit or deletion
        change_seq            int        set    tx.change_seq of the write
    agents:
        id                    int        key    req.context.agent.id

``str(N)``: a string column of at least N characters (plugins write no more); ``text``: a string of
any length; ``datetime``: a timestamp; plugins write aware UTC datetimes, and the reference host's
``UTCDateTime`` keeps them in UTC and loads them aware. ``key``: the integer primary key; in
``chats`` and ``messages`` autoincrement (on PostgreSQL SERIAL or IDENTITY: plugins draw ids from it
with ``pg_get_serial_sequence``). ``set``: set by every insert a plugin makes (NOT NULL is fine).
``NULL``: set by every insert, sometimes to NULL: nullable. ``NULL*``: left unset by some inserts:
nullable. ``messages.status`` holds one of ``inbound``, ``queued``, ``accepted``, ``sent``,
``delivered``, ``read``, ``failed``, ``unknown``; ``chats.type`` a registered chat type's name.

Further columns of ``chats`` and ``messages`` must be nullable or have a database-side default
(``server_default``, ``Identity``, ``Computed``): plugins do not set them. No column a plugin may
leave unset (those further columns, and the ones marked ``NULL*``) may have a Python-side
``default=``, and no column of the two a Python-side ``onupdate=`` (a value or a Python callable,
which SQLAlchemy fills in before it sends the statement): plugins run their hottest statements on
the driver (``wazzup_plugin/driver_sql.py``), which refuses them. A SQL expression
(``default=sa.func.now()``) is part of the statement and is fine.
``agents`` may have any other columns; plugins see agents through ``req.context.agent``.
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
    ``chats``, ``messages`` and ``agents``, by their SQL names (``"chats.id"``; see "Host tables").
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
    A column may also be a SQL expression over that table and the host's own ``chats`` or
    ``messages`` table (NULLs in the plugin table's columns where it has no row), e.g. a flag worked
    out from ``messages.status``: ``load`` must then give the same value.
    """


@hookspec
def register_routes(helpdesk):
    """Return a list of routes this plugin serves.

    Each route has ``template`` (a Falcon URI template under ``/api/<plugin segment>/`` or
    ``/api/chats/{chat_id:int}/<plugin segment>/``; the one exception a plugin may make is an
    address fixed by the outside world, such as a webhook URL a specification names: Wazzup24's
    ``/api/webhook``, also served as ``/api/wazzup24/webhook``, or a public download the outside world
    fetches, such as the files Wazzup24 downloads from ``/wazzup24/files/...``), ``resource`` (a Falcon
    resource), optional
    ``suffix`` and ``public`` (``False`` by default: the host then requires an authenticated
    agent, available to the responder as ``req.context.agent``; ``True`` for callbacks such as
    webhooks). Resources may set ``openapi = {"get": {...}, ...}`` operation objects (below)
    for the OpenAPI document. A template used twice stops startup.

    For every route the host answers ``HEAD`` with the ``GET`` responder (no body); takes request
    bodies read through ``req.get_media()`` as JSON in UTF-8 only (anything else answers 415
    ``unsupported_media_type``; a resource that reads ``req.bounded_stream`` itself is not
    affected); refuses a body over ``HELPDESK_MAX_BODY_BYTES``, or over the resource's own
    ``max_body_bytes`` attribute where it sets a smaller one, with 413 ``payload_too_large`` before
    anyone reads it; answers a body that is malformed or breaks off at the HTTP layer (a bad chunk, a
    client gone mid-body) with 400 ``invalid_body``, also when the resource reads the stream itself;
    and answers a path id too large for any id column with 404 before the responder runs: ``chat_not_found`` for ``{chat_id}``, ``message_not_found`` for ``{message_id}``. A
    plugin answers a chat or message that does not exist with the same codes. Every answer gets the
    host's security headers; a ``Content-Security-Policy`` the resource set itself is kept (a
    stricter one, e.g. ``sandbox`` for a file that users uploaded).

    ``req.context.agent``, on routes that are not public, has ``id``: the agent's ``agents.id``, an
    ``int`` (plugins store it, e.g. as ``messages.author_agent_id``), ``username`` (``str``) and
    ``display_name`` (``str``, may be empty: plugins show ``display_name or username``). A public
    route does not use it (the reference host sets it to ``None`` there).

    Errors are the host's to answer, in its one JSON shape ``{"status": int, "code": str,
    "message": str}`` (plus ``"fields"``, ``{field: [reasons]}``, where input was wrong; a plugin
    may also write such a body itself). A ``falcon.HTTPError`` a resource raises keeps its status and
    headers, with its ``description`` as ``message`` and the status's code as ``code`` (400
    ``bad_request``, 401 ``unauthorized``, 413 ``payload_too_large``, ...: ``host_stub/errors.py``).
    A database that is unavailable for now (a lost or refused connection, a lock or statement
    timeout, a full disk: ``host_stub.errors.database_unavailable``) answers 503
    ``database_unavailable`` with ``Retry-After``, so that a webhook's sender delivers again; any
    other exception, a database error that says the statement itself cannot work (a missing column)
    included, answers 500 ``internal_error``, its details only in the host's log (for a database
    error: the driver's reason, never the statement's parameters).

    OpenAPI operation objects are keyed by method (``"get"``, ``"post"``, ...; for a route with a
    ``suffix``, ``"post_<suffix>"`` first, then ``"post"``). A ``"schema"`` is a marshmallow schema (class or
    instance; in an ``"in": "query"`` parameter it stands for one parameter per field, as apispec's
    marshmallow plugin reads it) or, as a string, the name of one of the host's components:
    ``"Error"`` (the error shape), ``"Chat"`` and ``"Message"`` (as the API serves them, plugin
    fields included), ``"ChatPage"``, ``"MessagePage"``. The host adds the path parameters, the
    security requirement (none on public routes) and, on the other routes, a 401 response.
    """


@hookspec
def register_commands(cli):
    """Add this plugin's command group to the host's root click group ``cli`` (``helpdesk-stub``).

    Called when the CLI is built, before any command runs. Commands reach the helpdesk through
    ``click.get_current_context().obj.helpdesk()`` (built on first use) and read settings from
    ``obj.config``. A plugin may add top-level commands too; the Wazzup24 plugin's ``demo`` drives
    the reference host's own CLI (``db upgrade``, ``users create``, ``tokens create``, ``serve``, with
    ``HELPDESK_*`` settings) and works with the reference host only.
    """


@hookspec
def register_ui(helpdesk):
    """Return the UI assets this plugin adds to the agent UI, or ``None``.

    An object with ``name`` (URL segment: files are served at ``/static/plugins/<name>/``),
    ``static_dir`` (an absolute directory path), ``scripts`` and ``styles`` (file names inside
    ``static_dir`` loaded by every page). The page's scripts run in order, the host's first, and
    it defines ``window.helpdesk`` (the reference host: ``host_stub/static/app.js``, whose page's
    Content-Security-Policy admits scripts and styles from its own origin only, no inline ones).

    ``registerPanel(name, factory)``
        A chat type whose ``panel`` names it gets the panel under its chat view: ``factory(ctx)``
        builds it and may return ``{destroy()}``, called when the chat is closed (stop timers
        there). ``ctx`` has ``element`` (the panel's empty ``<div>``), ``chat`` (the chat as the
        API serves it, plugin fields included), ``agent`` (the signed-in agent), ``api`` and
        ``notify`` (below), ``refresh()`` (poll for changes now) and ``draft``: ``{get(),
        set(text), clear()}``, the agent's unsent text for this chat, kept in ``sessionStorage``
        across a lost session or a switch of chats and wiped on sign-out; clear it once the text
        is sent or stored; and ``openChat(chatId)``, which opens another chat (e.g. the one a message
        the panel sent ended up in). The reference host closes an open chat that is gone (its
        messages answer 404), saying so.
    ``registerMessageAction({id, label, appliesTo(message, chat), run(message, chat, ctx)})``
        A button on each message for which ``appliesTo`` is true (e.g. a channel's "Resend");
        ``message`` and ``chat`` are as the API serves them; ``run`` gets the panel's ``ctx``
        with ``element`` null, and may return a promise.
    ``registerChatIcon(typeName, fn)``
        ``fn(chat)`` returns ``{src, label}`` or null: the icon (a path under ``/static/``) and its
        accessible label for one chat of that type, in the list and the chat's header, where the
        type's own icon is too coarse (e.g. a gateway whose chats are on different messengers).
        ``chat`` is as the API serves it, plugin fields included; null keeps the type's icon.
    ``registerTextFormat(typeName, fn, plain)``
        A messenger's markup (WhatsApp's ``*bold*``, ...) in the messages of chats of that type.
        ``fn(text, linkify)`` returns a DOM Node drawn as a message's text, or null for the text as
        written; ``linkify(text)`` is the host's drawing of plain text, its http(s) links clickable, for
        ``fn``'s plain pieces. Build DOM nodes only, never HTML from the text. The Node's
        ``textContent`` must be the text exactly as written, markers included (hide them, so that
        copying a message gives it back), else the host draws the text as written. ``plain``
        (optional): ``plain(text)`` returns the text as a one-line preview shows it, markers left out
        (the host: a chat's ``last_message_preview`` in the chat list); it must return the text with
        some characters left out and no others, else the host shows the text as written, as it does
        for a type without ``plain`` (or when no plugin registered one). The stored text and preview
        stay as written: ``plain`` is for display only.
    ``registerListAction({id, label, run(ctx)})``
        A button under the chat list's search (e.g. a channel's "New chat"); the same ``id``
        again replaces it. ``run`` gets ``api``, ``notify`` and ``errorText`` (below), ``opener`` (the
        button, to give focus back to) and ``openChat(chatId)``, which opens a chat (loading it if the
        list does not hold it yet).
    ``api(path, {method, body, headers})``
        ``fetch`` with the agent's session, ``body`` sent as JSON; the host adds whatever its
        writes need (the reference host: its CSRF token on every method but GET and HEAD). It
        resolves to ``{ok, status, data}`` whatever the answer: ``data`` the JSON answer (the error
        shape on failure), ``status`` 0 when the server could not be reached.
    ``registerMessageDecorator(fn)``
        ``fn(message, chat, helpers)`` returns a DOM Node (or null) shown above the message's
        content on every render; ``helpers`` offers ``findMessage(predicate)`` (a loaded message of
        the open chat, or null) and ``scrollToMessage(id)`` (scrolls to a loaded message and briefly
        highlights it; false when it is not loaded).
    ``registerMediaUrl(fn)``
        ``fn(message, chat)`` returns the URL to show a message's media (image, video, audio,
        document) from instead of its ``content_uri``, or null to leave it: a path on the host's
        own origin (``/...``) or an ``https`` URL (e.g. the plugin's kept copy of a customer's
        photo). The first plugin answering one wins; the message's ``content_uri`` is unchanged.
    ``notify(text, kind)``
        A toast; ``kind`` is ``"success"``, ``"error"`` or ``"info"``.
    ``errorText(result, fallback, labels)``
        An ``api()`` result's error for people: its ``message`` with the per-field reasons of
        ``fields``, each field named by ``labels`` (``{name: "label"}``) where given.

    A plugin's elements may use the host's classes ``.visually-hidden`` (for screen readers only),
    ``.btn``, ``.btn-primary`` and ``.btn-ghost``, and its styles the host's CSS variables ``--muted``
    and ``--danger``.
    """


@hookspec
def register_workers(helpdesk):
    """Return a list of background workers that ``helpdesk-stub serve`` runs beside the web server.

    Each worker has ``name`` and ``argv``: the arguments, a sequence of strings, to the host's root
    command (the ``cli`` group given to ``register_commands``) that run it, e.g.
    ``("wazzup24", "worker")`` for ``helpdesk-stub wazzup24 worker``. ``serve`` starts one process
    per worker unless started with ``--no-workers``, and stops it on shutdown.
    """


@hookspec
def register_log_masks():
    """Return regular expressions (``str`` or compiled) matching text that must never reach a log.

    Called once, as the plugins are loaded (``host_stub.plugins.get_plugin_manager``), before any app
    or ``helpdesk`` exists: so it takes no arguments, and masks hold in every process that loads the
    plugins (the web workers, the background workers, the CLI) from its first log line. In each match,
    group 1 is kept and the rest of the match becomes ``***``, so a line still says what was there:
    ``r"(/wazzup24/files/)[^/?#\\s\"]+"`` turns ``GET /wazzup24/files/AbC.../a.pdf`` into
    ``GET /wazzup24/files/***/a.pdf``. The host applies them to every log record (its message, its
    exception text and the string values of its context) and to the web server's access lines (the
    request line, the URL, the referrer), beside its own masks (configured secret values, credential
    query parameters, its API tokens). A pattern that does not compile, has no group or matches an
    empty string stops startup. For secrets that are not settings, such as keys carried in a path.
    """


@hookspec
def startup(helpdesk):
    """Called once after the app is built, before it serves a request.

    Validate what is left to validate (the host: the Wazzup24 plugin checks its tables against
    "Host tables" here) and raise a ``ValueError`` naming what to fix to refuse to start (see
    "Startup" above); build long-lived objects (clients, caches) and keep them in
    ``helpdesk.plugin_state``. Return value ignored.
    """


@hookspec
def changes_committed(helpdesk, chat_ids, message_ids):
    """Called after a write transaction that created or changed chats or messages commits.

    ``chat_ids`` and ``message_ids`` are sets of host ids. Runs in the request's thread, so keep
    it fast (enqueue, do not send). Return value ignored; an exception is logged, never raised
    to the writer whose data is already committed.
    """


@hookspec
def agents_access_changed(helpdesk, agent_ids, active):
    """Called after a transaction that deactivated, deleted or reactivated agents commits.

    ``agent_ids`` is a set of ``agents.id``; ``active`` is ``False`` when they lost access (deactivated,
    or deleted: then their rows are gone, and so are plugin rows that follow them by ``ON DELETE
    CASCADE``) and ``True`` when they regained it. The host calls it only for agents whose state the
    transaction changed (activating an active agent is no change; the reference host calls it from
    ``helpdesk-stub users deactivate`` and ``activate``). A plugin records what follows (the
    Wazzup24 plugin: that Wazzup should no longer, or again, have them as users) and acts later: it
    runs in the caller's thread, so keep it fast (record, do not call out). Return value ignored; an
    exception is logged, never raised to the caller whose change is already committed.
    """

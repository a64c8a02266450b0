"""Every hook this plugin implements: the plugin's table of contents."""

from __future__ import annotations

from pathlib import Path

import pluggy

from wazzup_plugin import __version__, inbound, media, outbound
from wazzup_plugin.chat_type import WazzupChatType
from wazzup_plugin.fields import chat_fields, message_fields
from wazzup_plugin.host import check_host
from wazzup_plugin.media.fields import media_fields
from wazzup_plugin.outbound.ratelimit import WAZZUP_LIMIT, most_in_any_span
from wazzup_plugin.settings import SettingsError
from wazzup_plugin.state import PLUGIN_NAME, get_state, log
from wazzup_plugin.tables import define_tables

hookimpl = pluggy.HookimplMarker("helpdesk")

HELPDESK_MANIFEST = {"name": PLUGIN_NAME, "version": __version__, "contract": "1",
                     "summary": "WhatsApp and other messengers through Wazzup24 API v3"}

_HERE = Path(__file__).parent


@hookimpl
def register_chat_types(helpdesk):
    return [WazzupChatType()]


@hookimpl
def register_schema(metadata):
    define_tables(metadata)
    return str(_HERE / "migrations" / "versions")


@hookimpl
def register_fields(helpdesk):
    tables = get_state(helpdesk).tables
    return [chat_fields(tables), message_fields(tables, helpdesk.tables.messages), media_fields(tables)]


@hookimpl
def register_routes(helpdesk):
    state = get_state(helpdesk)
    return inbound.routes(helpdesk, state) + outbound.routes(helpdesk, state) + media.routes(helpdesk, state)


@hookimpl
def register_commands(cli):
    from wazzup_plugin.cli import wazzup24_group
    from wazzup_plugin.sandbox import add_top_level_commands

    cli.add_command(wazzup24_group())
    add_top_level_commands(cli)  # `helpdesk-stub demo`


@hookimpl
def register_log_masks():
    from wazzup_plugin.media.urls import TOKEN_IN_URL as MEDIA_TOKEN_IN_URL
    from wazzup_plugin.outbound.stored_files import TOKEN_IN_URL

    return [TOKEN_IN_URL, MEDIA_TOKEN_IN_URL]


@hookimpl
def register_ui(helpdesk):
    from wazzup_plugin.ui import ui_assets

    return ui_assets()


@hookimpl
def register_workers(helpdesk):
    return outbound.workers(helpdesk)


@hookimpl
def startup(helpdesk):
    # The host's chats, messages and agents tables as the plugin writes them (SQL names, columns,
    # defaults): a mismatch refuses startup here instead of failing the first webhook with a 500.
    check_host(helpdesk)
    state = get_state(helpdesk)
    if not state.settings.configured:
        log.warning("WAZZUP24_API_KEY is not set: the webhook receives, but sending is off "
                    "(connection status: not_configured)")
    problem = state.settings.unprotected_webhook_problem()
    if problem and not _fixing_the_webhook():
        raise SettingsError(problem)
    if not state.settings.webhook_secret:
        log.warning("WAZZUP24_WEBHOOK_SECRET is not set: the webhook accepts unauthenticated deliveries; "
                    "run `helpdesk-stub wazzup24 set-webhook` to protect it%s",
                    " (WAZZUP24_WEBHOOK_INSECURE=1: not recommended)" if state.settings.webhook_insecure else "")
    most = most_in_any_span(state.settings.rate_limit, state.settings.rate_window)
    if most > WAZZUP_LIMIT:
        # Not refused: a test double of Wazzup may allow more. Against Wazzup, the excess is answered 429
        # (retried, so nothing is lost, but every process then waits out the block).
        log.warning("WAZZUP24_RATE_LIMIT=%s per WAZZUP24_RATE_WINDOW=%ss lets up to %s requests through in 5 "
                    "seconds, over Wazzup's %s: Wazzup will answer 429. The default, 450 per 5 s, stays under it.",
                    state.settings.rate_limit, state.settings.rate_window, most, WAZZUP_LIMIT)


@hookimpl
def agents_access_changed(helpdesk, agent_ids, active):
    from wazzup_plugin.outbound import users

    users.access_changed(helpdesk, agent_ids, active)  # a deactivated agent stops being a Wazzup user


def _fixing_the_webhook() -> bool:
    """Running ``helpdesk-stub wazzup24 set-webhook``: the command that makes the missing secret, so
    an unprotected live webhook does not stop it (it builds the app, and so runs ``startup``)."""
    import click

    ctx = click.get_current_context(silent=True)
    return (ctx is not None and ctx.info_name == "set-webhook" and ctx.parent is not None
            and ctx.parent.info_name == "wazzup24")

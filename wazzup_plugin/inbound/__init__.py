"""Inbound: the Wazzup24 webhook turns deliveries into chats, messages and statuses."""

from __future__ import annotations

from wazzup_plugin.inbound.parked import CLOCK_KEY
from wazzup_plugin.routing import Route

WEBHOOK_PATHS = ("/api/webhook", "/api/wazzup24/webhook")  # the seed's URL, and ours


def routes(helpdesk, state) -> list:
    """Routes of the inbound flow (the webhook): public, Wazzup has no agent account."""
    from wazzup_plugin.inbound.webhook import WebhookResource

    # apply_parked receives only (tx, state): it reads the helpdesk's clock from here.
    state.extras.setdefault(CLOCK_KEY, helpdesk.clock)
    resource = WebhookResource(helpdesk, state)
    return [Route(path, resource, public=True) for path in WEBHOOK_PATHS]


def add_commands(group) -> None:
    """CLI commands of the inbound flow (simulate-incoming, quarantine list|replay)."""
    from wazzup_plugin.inbound.quarantine import quarantine_group
    from wazzup_plugin.inbound.simulate import simulate_incoming

    group.add_command(simulate_incoming)
    group.add_command(quarantine_group)

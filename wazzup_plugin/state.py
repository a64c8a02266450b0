"""What the plugin builds once at startup and keeps in ``helpdesk.plugin_state``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from wazzup_plugin.host import request_timeout_seconds
from wazzup_plugin.settings import WazzupSettings

PLUGIN_NAME = "wazzup24"
log = logging.getLogger(__name__)


@dataclass
class PluginState:
    settings: WazzupSettings
    tables: dict
    extras: dict[str, Any] = field(default_factory=dict)  # clients, caches built by the flows


def get_state(helpdesk) -> PluginState:
    """The plugin's state on this helpdesk, built on first use (settings validated then)."""
    state = helpdesk.plugin_state.get(PLUGIN_NAME)
    if state is None:
        from wazzup_plugin.tables import define_tables

        settings = WazzupSettings.from_env(helpdesk.config.env, request_timeout_seconds(helpdesk.config))
        state = PluginState(settings=settings,
                            tables=define_tables(helpdesk.metadata))
        helpdesk.plugin_state[PLUGIN_NAME] = state
    return state

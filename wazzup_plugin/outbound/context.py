"""The outbound flow's long-lived objects for one helpdesk: the client, the limiter, caches.

Built on first use and kept in ``state.extras["outbound"]``; nothing is built on import.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

from wazzup_plugin.client import WazzupClient
from wazzup_plugin.outbound.ratelimit import DbRateLimiter
from wazzup_plugin.settings import RATE_LIMIT_MAX_WAIT
from wazzup_plugin.state import get_state


@dataclass
class Outbound:
    helpdesk: Any
    state: Any
    client: WazzupClient | None  # None: WAZZUP24_API_KEY is not set
    limiter: DbRateLimiter
    clock: Callable
    caches: dict = field(default_factory=dict)
    # agent id -> the name this process last wrote to ``wazzup_users`` (``users.note_agent``): a send
    # writes the row only for an agent new to the process or renamed.
    agent_names: dict = field(default_factory=dict)

    @property
    def settings(self):
        return self.state.settings

    def cached(self, name: str, compute: Callable, seconds: float | None = None):
        """A per-process cache keyed by name, aged by the injected clock (tests move it)."""
        seconds = self.settings.connection_cache_seconds if seconds is None else seconds
        now = self.clock()
        hit = self.caches.get(name)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = compute()
        if seconds > 0:
            self.caches[name] = (now + timedelta(seconds=seconds), value)
        return value

    def list_channels(self) -> list[dict]:
        return self.cached("channels", self.client.channels)


def outbound(helpdesk, state=None) -> Outbound:
    state = state or get_state(helpdesk)
    ctx = state.extras.get("outbound")
    if ctx is None:
        s = state.settings
        limiter = DbRateLimiter(helpdesk.db, state.tables["rate_limit"], s.rate_limit, s.rate_window, helpdesk.clock,
                                sleep=state.extras.get("sleep", time.sleep), max_wait=RATE_LIMIT_MAX_WAIT)
        client = None
        if s.configured:
            client = WazzupClient(helpdesk.http, s.api_url, s.api_key, connect_timeout=s.connect_timeout,
                                  read_timeout=s.read_timeout, rate_limiter=limiter, rate_window=s.rate_window)
        ctx = state.extras["outbound"] = Outbound(helpdesk, state, client, limiter, helpdesk.clock)
    return ctx

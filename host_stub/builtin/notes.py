"""The host's own chat type, internal notes, registered through the public hooks like any plugin."""

from __future__ import annotations

from dataclasses import dataclass

from host_stub.hookspecs import hookimpl


@dataclass(frozen=True)
class InternalChatType:
    name: str = "internal"
    label: str = "Internal notes"
    icon: str = "/static/icons/internal.svg"
    panel: str | None = None
    can_compose: bool = False


@hookimpl(trylast=True)
def register_chat_types(helpdesk):
    return [InternalChatType()]

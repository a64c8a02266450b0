"""The host's own chat type, internal notes, registered through the public hooks like any plugin.

Dogfooding the contract: the type comes from ``register_chat_types`` and its icon is served
through ``register_ui`` (at ``/static/plugins/internal/``), exactly as a plugin's would be.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from host_stub.hookspecs import hookimpl

UI_NAME = "internal"
ICONS = Path(__file__).resolve().parent.parent / "static" / "icons"


@dataclass(frozen=True)
class InternalChatType:
    name: str = "internal"
    label: str = "Internal notes"
    icon: str = f"/static/plugins/{UI_NAME}/internal.svg"
    panel: str | None = None
    can_compose: bool = False


@dataclass(frozen=True)
class NotesUi:
    name: str = UI_NAME
    static_dir: str = str(ICONS)
    scripts: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()


@hookimpl(trylast=True)
def register_chat_types(helpdesk):
    return [InternalChatType()]


@hookimpl(trylast=True)
def register_ui(helpdesk):
    return NotesUi()

"""The ``wazzup`` chat type: how the host shows and labels Wazzup24 chats."""

from __future__ import annotations

from dataclasses import dataclass

CHAT_TYPE = "wazzup"
UI_NAME = "wazzup24"


@dataclass(frozen=True)
class WazzupChatType:
    name: str = CHAT_TYPE
    label: str = "WhatsApp (Wazzup24)"
    icon: str = f"/static/plugins/{UI_NAME}/whatsapp.svg"
    panel: str | None = "wazzup24-send"
    can_compose: bool = True

"""The plugin's UI assets: the WhatsApp icon and the send panel for ``wazzup`` chats."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wazzup_plugin.chat_type import UI_NAME


@dataclass(frozen=True)
class UiAssets:
    name: str
    static_dir: str
    scripts: tuple[str, ...] = field(default_factory=tuple)
    styles: tuple[str, ...] = field(default_factory=tuple)


def ui_assets() -> UiAssets:
    static = Path(__file__).parent / "static"
    return UiAssets(name=UI_NAME, static_dir=str(static),
                    scripts=tuple(p.name for p in sorted(static.glob("*.js"))),
                    styles=tuple(p.name for p in sorted(static.glob("*.css"))))

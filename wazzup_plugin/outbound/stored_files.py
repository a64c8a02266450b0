"""An uploaded file as the send route uses it: found for its chat only, and its public URL.

Kept apart from the routes (``files.py``), which build on the send route's checks: ``send.py`` uses
these, so neither imports the other's module.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import sqlalchemy as sa

from wazzup_plugin.outbound import file_rules as rules
from wazzup_plugin.outbound.http import Problem
from wazzup_plugin.settings import PUBLIC_URL

PATH = "/wazzup24/files"
# The URL's last segment is the file's name as long as its %-encoded form stays short; a longer one
# (a Cyrillic name is six characters per letter encoded) is served as file.<ext>, so the URL fits.
MAX_URL_NAME = 300


@dataclass(frozen=True)
class StoredFile:
    id: int
    chat_id: int
    name: str
    content_type: str
    size: int
    token: str

    @property
    def kind(self) -> str:
        return rules.message_kind(self.content_type)


def url_name(name: str) -> str:
    """The name in the file's public URL (decoded)."""
    if len(quote(name, safe="")) <= MAX_URL_NAME:
        return name
    ext = rules.extension_of(name)
    return f"file.{ext}" if ext else "file"


def public_url(settings, token: str, name: str) -> str:
    return f"{settings.public_url}{PATH}/{token}/{quote(url_name(name), safe='')}"


def served_here(settings, uri: str | None) -> bool:
    """Whether ``uri`` is one of this helpdesk's uploaded files, which Wazzup downloads from us."""
    return bool(uri and settings.public_url and uri.startswith(f"{settings.public_url}{PATH}/"))


def not_configured() -> Problem:
    return Problem(503, "files_not_configured",
                   f"Sending files needs the helpdesk's public address, where Wazzup downloads them: set {PUBLIC_URL} "
                   "(e.g. https://helpdesk.example.com) or WAZZUP24_WEBHOOK_URL. Nothing was stored.")


def file_for_send(conn, state, chat_id: int, file_id: int) -> StoredFile:
    """The uploaded file ``file_id`` of chat ``chat_id`` (422 on ``file_id`` otherwise: another chat's
    file is never sent, and which chats have files is not told)."""
    f = state.tables["files"]
    row = conn.execute(sa.select(f.c.id, f.c.chat_id, f.c.name, f.c.content_type, f.c.size, f.c.token)
                       .where(f.c.id == file_id, f.c.chat_id == chat_id)).first()
    if row is None:
        raise Problem(422, "invalid_body", "The request body is not valid.",
                      fields={"file_id": ["no such file uploaded to this chat"]})
    return StoredFile(**row._mapping)

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
from wazzup_plugin.serving import token_in_url
from wazzup_plugin.settings import PUBLIC_URL

PATH = "/wazzup24/files"
TOKEN_IN_URL = token_in_url(PATH)  # masked in every log line: the token is the only key to the file
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
    row = _file_row(conn, f, f.c.id == file_id, f.c.chat_id == chat_id)
    if row is None:
        raise _no_such_file()
    return _live(row, "file_id")


def _file_row(conn, f, *where):
    return conn.execute(sa.select(f.c.id, f.c.chat_id, f.c.name, f.c.content_type, f.c.size, f.c.token, f.c.purged_at)
                        .where(*where)).first()


def _live(row, field: str) -> StoredFile:
    """The file of ``row``; 422 ``wazzup_file_expired`` on ``field`` when housekeeping emptied it."""
    if row.purged_at is not None:
        raise Problem(422, "wazzup_file_expired", EXPIRED, fields={field: [EXPIRED]})
    return StoredFile(**{k: v for k, v in row._mapping.items() if k != "purged_at"})


EXPIRED = "This file was deleted after the helpdesk's retention period (WAZZUP24_FILE_RETENTION_DAYS); upload it again."


def _no_such_file() -> Problem:
    return Problem(422, "invalid_body", "The request body is not valid.",
                   fields={"file_id": ["no such file uploaded to this chat"]})


def mark_sent(conn, state, file_id: int, now) -> None:
    """Record, in the transaction storing a message that uses the file, that it was sent: housekeeping
    then keeps it. Refused (422, the transaction rolls back) when housekeeping deleted or emptied it
    since the send read it: the message would name a file that is gone."""
    f = state.tables["files"]
    marked = conn.execute(sa.update(f).where(f.c.id == file_id, f.c.purged_at.is_(None))
                          .values(sent_at=sa.func.coalesce(f.c.sent_at, now))).rowcount
    if not marked:
        raise _no_such_file()


def _token_in(settings, uri: str) -> str:
    """The token of one of our file URLs (:func:`served_here`)."""
    return uri[len(f"{settings.public_url}{PATH}/"):].partition("/")[0]


def expired_here(conn, state, settings, uri: str | None) -> bool:
    """Whether ``uri`` is one of this helpdesk's uploaded files that is gone (deleted or emptied): a
    resend of it would only have Wazzup fail to download it."""
    if not served_here(settings, uri):
        return False
    f = state.tables["files"]
    row = conn.execute(sa.select(f.c.purged_at).where(f.c.token == _token_in(settings, uri))).first()
    return row is None or row.purged_at is not None


def file_at_url(conn, state, settings, uri: str) -> StoredFile:
    """The uploaded file whose public URL a send pasted as ``content_uri`` (:func:`served_here`), so that
    it is sent, and kept, as if named by ``file_id``: left as a plain link, housekeeping would delete
    it as never sent while Wazzup still has to download it. The token is the file's key, so a file of
    another chat is found too (forwarding its link shares nothing its holder could not download).
    422 on ``content_uri`` when no file has that token, or it was deleted: Wazzup could not download it."""
    f = state.tables["files"]
    row = _file_row(conn, f, f.c.token == _token_in(settings, uri))
    if row is None:
        raise Problem(422, "invalid_body", "The request body is not valid.",
                      fields={"content_uri": ["this helpdesk has no uploaded file at this address"]})
    return _live(row, "content_uri")

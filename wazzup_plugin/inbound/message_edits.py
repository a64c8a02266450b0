"""Copies of stored messages: their edits and deletions applied (never backwards), and the statuses
an echo's copy carries."""

from __future__ import annotations

import sqlalchemy as sa

from wazzup_plugin.inbound.message_rows import content_fields
from wazzup_plugin.inbound.parse import Message, StatusReport
from wazzup_plugin.media.enqueue import enqueue_edited

# The message types a new link of an edit may bring (what its copy says it is now).
MEDIA_TYPES = ("image", "video", "audio", "document")


class MessageEdits:
    """``Writer``'s edits and deletions of stored messages.

    Relies on these of ``Writer``: ``conn``, ``t``, ``messages``, ``now``, ``seq`` and ``summary``; on
    ``_follow_edited_last_messages`` (``ChatWrites``) and ``apply_statuses`` (``StatusWrites``).
    """

    def _update_known(self, known: list[Message], existing: dict) -> None:
        """Copies of stored messages: apply edits and deletions; echoes carry statuses too."""
        edits, reports = [], []
        for msg in known:
            row = existing[msg.message_id]
            self.summary.duplicates.append(msg.message_id)
            change = self._edit(msg, row)
            if change:
                edits.append(change)
            if msg.is_echo and msg.status in ("sent", "delivered", "read", "error"):
                reports.append(StatusReport(msg.raw, msg.message_id, msg.status, msg.at, msg.error_code,
                                            msg.error_text))
        if edits:
            m, wm = self.messages, self.t["messages"]
            edits.sort(key=lambda e: e["b_id"])
            self.conn.execute(sa.update(m).where(m.c.id == sa.bindparam("b_id")).values(
                text=sa.bindparam("b_text", type_=m.c.text.type),
                previous_text=sa.bindparam("b_previous", type_=m.c.previous_text.type),
                edited_at=sa.bindparam("b_edited", type_=m.c.edited_at.type),
                deleted_at=sa.bindparam("b_deleted", type_=m.c.deleted_at.type),
                content_uri=sa.bindparam("b_content_uri", type_=m.c.content_uri.type),
                content_name=sa.bindparam("b_content_name", type_=m.c.content_name.type),
                content_type=sa.bindparam("b_content_type", type_=m.c.content_type.type),
                type=sa.bindparam("b_type", type_=m.c.type.type),
                change_seq=sa.bindparam("b_seq", type_=m.c.change_seq.type)), edits)
            self.conn.execute(sa.update(wm).where(wm.c.message_id == sa.bindparam("b_id")).values(
                version_at=sa.bindparam("b_version", type_=wm.c.version_at.type)), edits)
            self._follow_edited_last_messages(edits)
            # New media an edit brings is downloaded as a new message's is (an echo's is not kept).
            enqueue_edited(self.conn, self.t["media"], [
                (e["b_id"], e["chat_id"], e["b_content_uri"]) for e in edits if e["new_media"]], self.now)
            self.summary.message_ids.update(e["b_id"] for e in edits)
            self.summary.edited.extend(e["wid"] for e in edits)
        if reports:
            self.apply_statuses(reports, allow_park=False)

    def _edit(self, msg: Message, row) -> dict | None:
        """The new text/markers for a stored message, or None when this copy is not newer.

        An edit changes the text, the media (a new ``contentUri``: §3.6 lets a message's link be
        replaced, §5.1 delivers it as ``isEdited``), or both. A copy without a link changes no media
        (Wazzup need not repeat it), and its text is compared as for any edit."""
        if not (msg.is_edited or msg.is_deleted) or row.deleted_at is not None:
            return None  # a plain redelivery changes nothing; a deletion is final
        at = msg.at or self.now
        change = {"b_id": row.message_id, "wid": msg.message_id, "b_text": row.text,
                  "b_previous": row.previous_text, "b_edited": row.edited_at, "b_deleted": None,
                  "b_version": row.version_at, "b_seq": self.seq, "b_content_uri": row.content_uri,
                  "b_content_name": row.content_name, "b_content_type": row.content_type, "b_type": row.type,
                  # for the chat's preview, when this is its last message
                  "chat_id": row.chat_id, "at": row.messenger_at, "type": row.type, "new_media": False}
        if msg.is_deleted:
            change["b_deleted"] = self.now
            change["b_previous"] = row.previous_text or msg.old_text or row.text
            return change
        # An edit applies when it is newer than what we hold; at equal times (Wazzup may keep the
        # original dateTime) only an edit that starts from our current text is the newer one.
        if row.version_at is not None and row.edited_at is not None:
            if at < row.version_at or (at == row.version_at and msg.old_text != row.text):
                return None
        new_media = msg.content_uri is not None and msg.content_uri != row.content_uri
        if msg.text == row.text and not new_media:
            return None
        if msg.text != row.text:
            change.update(b_text=msg.text, b_previous=msg.old_text if msg.old_text is not None else row.text)
        if new_media:  # text and previous_text stay as they are unless the text changed too
            media = content_fields(msg.content_uri)
            change.update({f"b_{k}": v for k, v in media.items()}, new_media=not msg.is_echo)
            if msg.raw_type in MEDIA_TYPES:  # the new file may be of another kind (a photo replaced by a PDF)
                change.update(b_type=msg.raw_type, type=msg.raw_type)
        change.update(b_edited=self.now, b_version=max(at, row.version_at) if row.version_at else at)
        return change

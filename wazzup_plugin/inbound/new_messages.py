"""Inserting the messages not stored yet: their host and Wazzup rows, insert-or-ignore against
concurrent deliveries of the same message, and on PostgreSQL one statement for the usual one."""

from __future__ import annotations

import sqlalchemy as sa

from wazzup_plugin.error_texts import human_text
from wazzup_plugin.inbound.message_rows import author_name, content_fields, placeholder
from wazzup_plugin.inbound.parse import Message
from wazzup_plugin.media.enqueue import enqueue_new
from wazzup_plugin.statuses import FROM_WAZZUP, TIMESTAMP_COLUMN
from wazzup_plugin.store_common import dialect_insert, insert_ignore_returning, insert_returning_ids


def _unbounded(type_: sa.types.TypeEngine) -> sa.types.TypeEngine:
    return sa.String() if isinstance(type_, sa.String) else type_


# The plugin's columns of a new message's Wazzup row, but for the host id it belongs to.
WAZZUP_COLUMNS = ("chat_id", "wazzup_message_id", "crm_message_id", "is_echo", "sent_from_app", "author_id",
                  "ref_message_id", "version_at")


def selected_parameters(table: sa.Table, prefix: str, columns) -> list:
    """``prefix + column`` parameters as a SELECT list for ``INSERT … SELECT``, each cast to its column's type.

    In a SELECT list a parameter has no column to take its type from (a NULL would be text). Never
    cast to a bounded VARCHAR: that cast truncates silently, where the column refuses.
    """
    return [sa.cast(sa.bindparam(f"{prefix}{k}", type_=table.c[k].type), _unbounded(table.c[k].type))
            for k in columns]


class NewMessages:
    """``Writer``'s inserts of new messages.

    Relies on these of ``Writer``: ``conn``, ``t``, ``messages``, ``chats``, ``now``, ``seq``, ``summary``,
    ``lock``, ``_driver_statement`` and ``_nothing_parked`` (set here); on ``_stored_messages``
    (``StoredLookups``), ``_follow_chats``, ``_chat_follow_values`` and ``_chat_follow_update``
    (``ChatWrites``) and ``_update_known`` (``MessageEdits``).
    """

    def _any_parked(self):
        """1 when any item is parked, else 0: a scalar for a statement run under the change counter."""
        p = self.t["parked"]
        return sa.select(sa.func.count()).select_from(sa.select(p.c.id).limit(1).subquery()).scalar_subquery()

    def _insert_wazzup_messages(self, rows: list[dict]) -> set[int]:
        """Insert-or-ignore the messages' Wazzup rows; the host ids of the rows this transaction won.

        One message (the usual delivery) also brings back whether anything is parked, so that
        ``apply_parked`` needs no statement of its own (on PostgreSQL, one round trip less). The
        insert runs under the change counter, which every writer that parks holds too, so what it
        sees is current.
        """
        wm = self.t["messages"]
        if len(rows) != 1:
            return insert_ignore_returning(self.conn, wm, rows, wm.c.message_id)
        self.lock()
        stmt = self._driver_statement(
            "insert_wazzup_message", lambda: dialect_insert(self.conn, wm).on_conflict_do_nothing()
            .returning(wm.c.message_id, self._any_parked().label("any_parked")), tuple(rows[0]))
        won = stmt.rows(self.conn, rows[0])
        if won and not won[0][1]:
            self._nothing_parked = True
        return {r[0] for r in won}

    def _message_row(self, msg: Message, chat_id: int, stamped: bool = True) -> dict:
        """The host row of a new message; ``stamped=False``: without ``change_seq`` (a one-statement
        write takes the counter inside its statement)."""
        at = msg.at or self.now
        text = msg.text
        if not text and not msg.content_uri:
            text = placeholder(msg)
        row = {
            "chat_id": chat_id, "direction": "out" if msg.is_echo else "in", "type": msg.type, "text": text,
            **content_fields(msg.content_uri),
            "author_name": author_name(msg), "messenger_at": at,
            "created_at": self.now, "edited_at": self.now if msg.is_edited else None,
            "deleted_at": self.now if msg.is_deleted else None,
            "previous_text": msg.old_text if (msg.is_edited or msg.is_deleted) else None,
            "error_code": None, "error_text": None,
            **{col: None for col in TIMESTAMP_COLUMN.values()},
        }
        if stamped:
            row["change_seq"] = self.seq
        if not msg.is_echo:
            row["status"] = "inbound"
        else:  # typed on the phone or in Wazzup's window: an outgoing message with its ticks
            status = FROM_WAZZUP.get(msg.status or "sent", "sent")
            row["status"] = status if status != "inbound" else "sent"
            row["sent_at"] = at
            row[TIMESTAMP_COLUMN[row["status"]]] = at
            if row["status"] == "failed":
                row["error_code"], row["error_text"] = msg.error_code, human_text(msg.error_code) or msg.error_text
        return row

    def _insert_messages(self, fresh: list[Message], chat_of: dict, apply_lost_edits: bool = False) -> list[str]:
        """Insert the messages not stored yet; returns the Wazzup ids this transaction stored.

        ``apply_lost_edits``: the stored rows were looked up before this transaction, so a message
        another delivery stored since is lost here; if this copy edits or deletes it, the change is
        applied to the stored row as ``_update_known`` would have.
        """
        if not fresh:
            return []
        m = self.messages
        if len(fresh) == 1 and self.conn.dialect.name == "postgresql":
            # The usual delivery on PostgreSQL: message, Wazzup row and chat in one statement.
            mine, won = self._store_one_message_at_once(fresh[0], chat_of[fresh[0].chat_key])
            followed = True
        else:
            ids = insert_returning_ids(self.conn, m, [self._message_row(x, chat_of[x.chat_key]) for x in fresh])
            mine = {x.message_id: host_id for x, host_id in zip(fresh, ids)}
            # The rows this insert-or-ignore returns are exactly the ones we won (no re-select).
            won = self._insert_wazzup_messages([
                {"message_id": mine[x.message_id], **self._wazzup_row(x, chat_of[x.chat_key])} for x in fresh])
            followed = False
        lost = [host_id for host_id in mine.values() if host_id not in won]
        if lost:  # another worker stored the same message first: drop our copy
            self.conn.execute(sa.delete(m).where(m.c.id.in_(lost)))
        stored = [x for x in fresh if mine[x.message_id] in won]
        self.summary.new.extend(x.message_id for x in stored)
        # By id: comparing Message dataclasses field by field made this quadratic in the delivery's size.
        stored_ids = {x.message_id for x in stored}
        lost_copies = [x for x in fresh if x.message_id not in stored_ids]
        changes = [x for x in lost_copies if x.is_edited or x.is_deleted] if apply_lost_edits else []
        if changes:
            self._update_known(changes, self._stored_messages({x.message_id: x for x in changes}))
        changed = {x.message_id for x in changes}
        self.summary.duplicates.extend(x.message_id for x in lost_copies if x.message_id not in changed)
        self.summary.message_ids.update(mine[x.message_id] for x in stored)
        # A customer's photo, voice note or document: kept by the helpdesk, downloaded in the background.
        enqueue_new(self.conn, self.t["media"], [(mine[x.message_id], chat_of[x.chat_key], x.content_uri)
                                                 for x in stored if x.content_uri and not x.is_echo], self.now)
        if followed:
            self.summary.chat_ids.update(chat_of[x.chat_key] for x in stored)
        else:
            self._follow_chats(stored, chat_of)
        return [x.message_id for x in stored]

    def _wazzup_row(self, msg: Message, chat_id: int) -> dict:
        """The plugin's row of a new message, but for the host id it belongs to (``message_id``)."""
        return {"chat_id": chat_id, "wazzup_message_id": msg.message_id, "crm_message_id": None,
                "is_echo": msg.is_echo, "sent_from_app": msg.sent_from_app, "author_id": msg.author_id,
                "ref_message_id": msg.ref_message_id, "version_at": msg.at or self.now}

    def _store_one_message_at_once(self, msg: Message, chat_id: int) -> tuple[dict[str, int], set[int]]:
        """PostgreSQL: insert one message, insert-or-ignore its Wazzup row and follow its chat, in one statement.

        The separate statements cost a round trip each, and on a loopback connection a round trip
        costs more than the statement. The chat follows only if the Wazzup row went in (another
        delivery may have stored the same message since the lookup): then, as on the general path,
        our host row is deleted by the caller. The statement also says whether anything is parked
        (it runs under the change counter, as ``_insert_wazzup_messages`` does).
        Returns ``({wazzup id: our host id}, {host id if ours won})``.
        """
        row, values = self._one_message_values(msg, chat_id)
        stmt = self._driver_statement(("store_one_at_once", tuple(row)),
                                      lambda: self._one_message_at_once_statement(tuple(row)))
        ((host_id, won, _followed, any_parked),) = stmt.rows(self.conn, values)
        if won is not None and not any_parked:
            self._nothing_parked = True
        return {msg.message_id: host_id}, ({won} if won is not None else set())

    def _one_message_values(self, msg: Message, chat_id: int | None, stamped: bool = True) -> tuple[dict, dict]:
        """``(host row, parameters)`` of the one-message statements: the host row as ``m_*``, the
        Wazzup row as ``w_*``, the chat's follow-up as ``b_*`` (``stamped``: see ``_message_row``;
        ``chat_id`` None: the statement finds the chat itself)."""
        row = self._message_row(msg, chat_id, stamped)
        values = {f"m_{k}": v for k, v in row.items()}
        values.update({f"w_{k}": v for k, v in self._wazzup_row(msg, chat_id).items()})
        values.update(self._chat_follow_values(chat_id, [msg], stamped))
        return row, values

    def _one_message_at_once_statement(self, message_columns: tuple[str, ...]) -> sa.Select:
        m, wm, c = self.messages, self.t["messages"], self.chats
        new = (sa.insert(m).values({k: sa.bindparam(f"m_{k}", type_=m.c[k].type) for k in message_columns})
               .returning(m.c.id).cte("new_message"))
        won = (dialect_insert(self.conn, wm).from_select(
            ["message_id", *WAZZUP_COLUMNS], sa.select(new.c.id, *selected_parameters(wm, "w_", WAZZUP_COLUMNS)))
            .on_conflict_do_nothing().returning(wm.c.message_id).cte("won"))
        followed = (self._chat_follow_update().where(sa.exists(sa.select(won.c.message_id)))
                    .returning(c.c.id).cte("followed"))
        # ``followed`` is selected although nobody reads it: SQLAlchemy leaves out a CTE the
        # statement does not reference, and PostgreSQL runs every data-modifying CTE it is given.
        return sa.select(new.c.id, sa.select(won.c.message_id).scalar_subquery().label("won"),
                         sa.select(followed.c.id).scalar_subquery().label("followed"),
                         self._any_parked().label("any_parked"))

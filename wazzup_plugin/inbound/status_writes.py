"""Applying Wazzup's statuses to stored messages through the status machine (never backwards); a
status of a message not known yet is parked."""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa

from wazzup_plugin.inbound.id_chunks import chunks
from wazzup_plugin.inbound.parse import StatusReport
from wazzup_plugin.error_texts import human_text
from wazzup_plugin.statuses import FROM_WAZZUP, TIMESTAMP_COLUMN, can_move

DELIVERY_RANK = {"sent": 1, "delivered": 2, "read": 3}


class StatusWrites:
    """``Writer``'s status changes.

    Relies on these of ``Writer``: ``conn``, ``t``, ``messages``, ``now``, ``seq`` and ``summary``; on
    ``_park`` (``EarlyArrivals``).
    """

    def apply_statuses(self, reports: list[StatusReport], allow_park: bool = True) -> None:
        if not reports:
            return
        by_id: dict[str, list[StatusReport]] = defaultdict(list)
        for r in reports:
            by_id[r.message_id].append(r)
        wm, m = self.t["messages"], self.messages
        stamp_cols = sorted(TIMESTAMP_COLUMN.values())
        rows = {}
        for part in chunks(sorted(by_id)):
            rows.update({r.wazzup_message_id: r for r in self.conn.execute(
                sa.select(wm.c.wazzup_message_id, m.c.id, m.c.status, m.c.edited_at, m.c.error_code,
                          m.c.error_text, *[m.c[col] for col in stamp_cols])
                .join(m, m.c.id == wm.c.message_id).where(wm.c.wazzup_message_id.in_(part)))})

        unknown = [wid for wid in sorted(by_id) if wid not in rows]
        if unknown and allow_park:
            self._park([("status", r.message_id, None, f"s:{r.message_id}:{r.status}", r.raw)
                        for wid in unknown for r in by_id[wid]])
        changed = []
        for wid in sorted(by_id, key=lambda w: rows[w].id if w in rows else 0):
            if wid in rows:
                change = self._status_change(rows[wid], by_id[wid], stamp_cols)
                if change:
                    changed.append((wid, change))
        updates = [change for _, change in changed]
        if not updates:
            return
        self.conn.execute(sa.update(m).where(m.c.id == sa.bindparam("b_id")).values(
            status=sa.bindparam("b_status", type_=m.c.status.type),
            error_code=sa.bindparam("b_error_code", type_=m.c.error_code.type),
            error_text=sa.bindparam("b_error_text", type_=m.c.error_text.type),
            edited_at=sa.bindparam("b_edited_at", type_=m.c.edited_at.type),
            change_seq=sa.bindparam("b_seq", type_=m.c.change_seq.type),
            **{col: sa.bindparam(f"b_{col}", type_=m.c[col].type) for col in stamp_cols}), updates)
        self.summary.statuses_applied += len(updates)
        self.summary.message_ids.update(u["b_id"] for u in updates)
        self.summary.failed.extend((u["b_id"], wid, u["b_error_code"]) for wid, u in changed
                                   if u["b_status"] == "failed" and rows[wid].status != "failed")

    def _status_change(self, row, reports: list[StatusReport], stamp_cols) -> dict | None:
        status = row.status
        stamps = {col: row._mapping[col] for col in stamp_cols}
        error_code, error_text, edited_at = row.error_code, row.error_text, row.edited_at
        pending = sorted(reports, key=lambda r: (r.at or self.now))
        moved = True
        while moved:  # apply in any order until nothing moves: the result never goes backwards
            moved = False
            for r in pending:
                new = FROM_WAZZUP.get(r.status)
                if new and can_move(status, new):
                    status, moved = new, True
                    stamps[TIMESTAMP_COLUMN[new]] = stamps[TIMESTAMP_COLUMN[new]] or r.at or self.now
                    if new == "failed":
                        # Our words for a code we know (24_HOURS_EXCEEDED: send a template...); else Wazzup's.
                        error_code, error_text = r.error_code, human_text(r.error_code) or r.error_text
        for r in pending:
            new = FROM_WAZZUP.get(r.status)
            if r.status == "edited":
                edited_at = edited_at or r.at or self.now
            # A late "delivered" after "read" still records when it was delivered.
            elif DELIVERY_RANK.get(new, 99) <= DELIVERY_RANK.get(status, 0):
                stamps[TIMESTAMP_COLUMN[new]] = stamps[TIMESTAMP_COLUMN[new]] or r.at or self.now
        before = (row.status, row.error_code, row.error_text, row.edited_at,
                  *[row._mapping[c] for c in stamp_cols])
        after = (status, error_code, error_text, edited_at, *[stamps[c] for c in stamp_cols])
        if before == after:
            return None
        return {"b_id": row.id, "b_status": status, "b_error_code": error_code, "b_error_text": error_text,
                "b_edited_at": edited_at, "b_seq": self.seq, **{f"b_{c}": stamps[c] for c in stamp_cols}}

"""WAZZUP24_FILES_QUOTA_MB: how many bytes uploaded files may take in the database, checked per upload.

The total is summed per upload from ``ix_wazzup_files_live`` (the size of every file still holding its
bytes), so neither database reads a row or its bytes: cheap for the thousands of files a helpdesk keeps.
It is summed inside the upload's write transaction. On SQLite that transaction is the only writer
(``BEGIN IMMEDIATE``), so the quota is exact. On PostgreSQL two uploads at the same moment each see
the total without the other and may both pass: the quota can be exceeded by the files uploaded in
that same instant (at most 10 MB each). Accepted: it bounds the database's growth, and a lock every
upload queues on would cost every upload more than that overshoot is worth.
"""

from __future__ import annotations

import sqlalchemy as sa

from wazzup_plugin.outbound import file_rules as rules
from wazzup_plugin.outbound.http import Problem

QUOTA = "WAZZUP24_FILES_QUOTA_MB"
MB = 1024 * 1024


def stored_files(conn, state) -> tuple[int, int]:
    """How many uploaded files hold their bytes, and how many bytes (retention's emptied ones no longer count)."""
    f = state.tables["files"]
    count, size = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(f.c.size), 0))
                               .where(f.c.purged_at.is_(None))).one()
    return count, size


def quota_bytes(settings) -> int | None:
    """The quota in bytes; None: no quota (WAZZUP24_FILES_QUOTA_MB=0)."""
    return settings.files_quota_mb * MB if settings.files_quota_mb else None


def check_quota(conn, state, settings, size: int) -> None:
    """507 ``wazzup_files_quota`` when a file of ``size`` bytes would take the stored total over the quota."""
    limit = quota_bytes(settings)
    if limit is None:
        return
    stored = stored_files(conn, state)[1]
    if stored + size > limit:
        raise Problem(507, "wazzup_files_quota",
                      f"Uploaded files already take {rules.human_size(stored)} of the {settings.files_quota_mb} MB "
                      f"allowed ({QUOTA}); this {rules.human_size(size)} file does not fit, and nothing was "
                      "stored. Files nobody sent are deleted after a day; ask an administrator to raise the "
                      "quota or to set WAZZUP24_FILE_RETENTION_DAYS.")

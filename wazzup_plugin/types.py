"""Column types the plugin needs (kept here: the plugin does not import the host)."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa


def _isoformat_is_sqlite_text(inner) -> bool:
    """Whether the SQLite dialect writes naive UTC exactly as ``isoformat(" ", "microseconds")`` does."""
    if inner is None:
        return False
    probes = (datetime(2026, 11, 26, 23, 5, 7, 42), datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999))
    return all(inner(d) == d.isoformat(" ", "microseconds") for d in probes)


class UTCDateTime(sa.TypeDecorator):
    """Aware UTC datetimes on every database (SQLite keeps naive UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use aware UTC datetimes")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    # The two processors below do exactly what the methods above do, fused with the dialect's own
    # processor into one function per dialect: a page of 50 messages converts 600 of these values,
    # and TypeDecorator's generic wrapper (two calls and a dialect check per value) was most of it.

    def bind_processor(self, dialect):
        inner = self.impl_instance.bind_processor(dialect)
        naive = dialect.name == "sqlite"
        utc = timezone.utc
        if naive and _isoformat_is_sqlite_text(inner):
            def process_sqlite(value):
                # The dialect's text, written by one C call: a delivery binds several stamps per
                # message, inside the write lock, and the dialect's formatting was most of it.
                if value is None:
                    return None
                if value.tzinfo is not utc:
                    if value.tzinfo is None:
                        raise ValueError("naive datetime given; use aware UTC datetimes")
                    value = value.astimezone(utc)
                return value.isoformat(" ", "microseconds")[:26]  # "YYYY-MM-DD HH:MM:SS.ffffff"

            return process_sqlite

        def process(value):
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given; use aware UTC datetimes")
            if value.tzinfo is not utc:
                value = value.astimezone(utc)
            if naive:
                value = value.replace(tzinfo=None)
            return inner(value) if inner else value

        return process

    def result_processor(self, dialect, coltype):
        inner = self.impl_instance.result_processor(dialect, coltype)
        utc = timezone.utc
        if dialect.name == "sqlite":
            parse = datetime.fromisoformat

            def process_sqlite(value):
                # SQLite keeps naive UTC as ISO text: one C call gives the aware value (~9x faster
                # than the dialect's parser and a replace); anything unusual takes the general path.
                if value is None:  # most of a message's stamps (queued_at ... unknown_at) are NULL
                    return None
                if value.__class__ is str:
                    try:
                        parsed = parse(value + "+00:00")
                    except ValueError:
                        pass
                    else:
                        if parsed.tzinfo is not None:  # a date alone parses, ignoring the offset
                            return parsed
                return process(value)
        else:
            process_sqlite = None

        def process(value):
            if inner is not None:
                value = inner(value)
            if value is None:
                return None
            if value.tzinfo is None:
                return value.replace(tzinfo=utc)
            return value if value.tzinfo is utc else value.astimezone(utc)

        return process_sqlite or process

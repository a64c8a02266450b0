"""UTCDateTime's fused processors give exactly what its process_* methods give (host and plugin copies)."""

from datetime import timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from host_stub.models import UTCDateTime as HostUTCDateTime
from wazzup_plugin.types import UTCDateTime as PluginUTCDateTime

DIALECTS = [sqlite.dialect(), postgresql.psycopg.dialect()]
aware = st.datetimes(timezones=st.timezones(), allow_imaginary=False)


def _generic(t, dialect):
    """What TypeDecorator does with the process_* methods and the dialect's own processors."""
    impl = t.dialect_impl(dialect).impl_instance
    inner_bind, inner_result = impl.bind_processor(dialect), impl.result_processor(dialect, None)
    bind = lambda v: (inner_bind or (lambda x: x))(t.process_bind_param(v, dialect))  # noqa: E731
    result = lambda v: t.process_result_value((inner_result or (lambda x: x))(v), dialect)  # noqa: E731
    return bind, result


@pytest.mark.parametrize("cls", [HostUTCDateTime, PluginUTCDateTime])
@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@given(value=aware)
def test_fused_processors_match_the_process_methods(cls, dialect, value):
    t = cls()
    bind, result = t.dialect_impl(dialect).bind_processor(dialect), t.dialect_impl(dialect).result_processor(dialect, None)
    generic_bind, generic_result = _generic(t, dialect)
    stored = bind(value)
    assert stored == generic_bind(value)
    back = result(stored)
    assert back == generic_result(stored) and back.tzinfo is timezone.utc and back == value.astimezone(timezone.utc)


@pytest.mark.parametrize("cls", [HostUTCDateTime, PluginUTCDateTime])
@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_none_passes_and_naive_datetimes_are_refused(cls, dialect):
    from datetime import datetime

    t = cls()
    bind, result = t.dialect_impl(dialect).bind_processor(dialect), t.dialect_impl(dialect).result_processor(dialect, None)
    assert bind(None) is None and result(None) is None
    with pytest.raises(ValueError, match="naive datetime"):
        bind(datetime(2025, 1, 1))


@pytest.mark.parametrize("cls", [HostUTCDateTime, PluginUTCDateTime])
@pytest.mark.parametrize("text", ["2025-05-06 14:18:00", "2025-05-06 14:18:00.5", "2025-05-06T14:18:00.000001",
                                  "2025-05-06 14:18:00.000001+03:00", "2025-05-06", "2025-W19-2",
                                  "not a date at all"])
def test_sqlite_text_in_other_formats_reads_as_the_generic_path_reads_it(cls, text):
    dialect = sqlite.dialect()
    t = cls()
    fused = t.dialect_impl(dialect).result_processor(dialect, None)
    _, generic = _generic(t, dialect)
    try:
        expected = generic(text)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            fused(text)
    else:
        assert fused(text) == expected


@given(value=aware)
def test_stored_sqlite_text_turns_into_the_answers_iso_string_directly(value):
    from host_stub.models import sqlite_stamp_isoformat, sqlite_stamp_value

    dialect = sqlite.dialect()
    stored = HostUTCDateTime().dialect_impl(dialect).bind_processor(dialect)(value)
    assert sqlite_stamp_value(stored) == value.astimezone(timezone.utc)  # (a time in a DST fold equals no other zone)
    assert sqlite_stamp_isoformat(stored) == value.astimezone(timezone.utc).isoformat()


@pytest.mark.parametrize("text", ["2026-11-27 03:05:07", "2026-11-27T03:05:07.5", "2026-11-27 03:05:07.000000"])
def test_stored_sqlite_text_of_other_layouts_still_reads_as_its_datetime(text):
    from host_stub.models import sqlite_stamp_isoformat, sqlite_stamp_value

    assert sqlite_stamp_isoformat(text) == sqlite_stamp_value(text).isoformat()
    assert sqlite_stamp_isoformat(None) is None


def test_stored_sqlite_text_that_only_looks_like_a_stamp_is_not_passed_off_as_one():
    from host_stub.models import sqlite_stamp_isoformat, sqlite_stamp_value

    text = "2026-11-27 03:05:07.000+01"  # 26 characters, not what the type writes
    with pytest.raises(Exception) as read:
        sqlite_stamp_value(text)
    with pytest.raises(read.type):
        sqlite_stamp_isoformat(text)

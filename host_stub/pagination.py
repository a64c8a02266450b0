"""Opaque cursors: base64url JSON ``[kind, *sort key of the last row returned]``.

The kind says which listing a cursor belongs to, so a cursor from one mode (say, older history)
is refused by another (say, changes) instead of silently paging the wrong way.
"""

from __future__ import annotations

import base64
import json

import falcon

from host_stub.errors import ApiError


def encode_cursor(kind: str, *key) -> str:
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_kind(cursor: str) -> str:
    """The kind of a cursor (validated), without checking its key."""
    key = _decode(cursor)
    if not key or not isinstance(key[0], str):
        raise invalid_cursor()
    return key[0]


# What a cursor's values may be. Ids are INTEGER columns (four bytes on PostgreSQL) and change
# counters BIGINT: a number past them was never given out, and binding it would fail the statement.
MAX_ID = 2**31 - 1
MAX_SEQ = 2**62
_PARTS = {"id": (int, MAX_ID), "seq": (int, MAX_SEQ), "text": (str, None)}


def decode_cursor(cursor: str, kind: str, parts: tuple[str, ...]) -> list:
    """The key of a cursor of ``kind`` whose values are ``parts`` ("id", "seq" or "text")."""
    key = _decode(cursor)
    if len(key) != len(parts) + 1 or key[0] != kind:
        raise invalid_cursor()
    for value, part in zip(key[1:], parts):
        expected, most = _PARTS[part]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise invalid_cursor()
        if most is not None and not 0 <= value <= most:
            raise invalid_cursor()
    return key[1:]


def _decode(cursor: str) -> list:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:  # binascii, JSON and UTF-8 errors are all ValueErrors
        raise invalid_cursor() from None
    if not isinstance(key, list):
        raise invalid_cursor()
    return key


def invalid_cursor(reason: str = "The cursor is not one this listing gave out; start again without it.") -> ApiError:
    return ApiError(falcon.HTTP_422, "invalid_cursor", reason, fields={"cursor": [reason]})

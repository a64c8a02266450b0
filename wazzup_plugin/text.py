"""Text every database stores: no NUL character (PostgreSQL refuses one in text) and no lone
surrogate (a JSON ``\\ud800`` escape decodes to one; no driver can encode it). One such
character in one row fails the whole transaction it is written in."""

from __future__ import annotations

import re


def clean_text(value: str) -> str:
    """``value`` without NUL characters, a lone surrogate replaced by ``?``."""
    value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def is_clean(value: str) -> bool:
    return clean_text(value) == value


CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def is_id(value, max_length: int) -> bool:
    """A usable identifier: a non-empty string that fits its column, with no control characters or
    lone surrogates (one of those fails the whole transaction it is written in)."""
    return (isinstance(value, str) and 0 < len(value) <= max_length and not CONTROL_CHARACTERS.search(value)
            and is_clean(value))


UNSTORABLE = "must not contain NUL characters or lone surrogates (\\ud800-\\udfff)"


def storable_everywhere(value) -> bool:
    """No string anywhere in ``value`` (a request's field: text, list or object) is unclean; for input
    a client sends, which is refused, not silently changed. Iterative: the body may be nested as
    deep as the JSON parser allowed."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not is_clean(item):
                return False
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True

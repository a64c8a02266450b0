"""Which bytes of a served file a request asks for: its ``Range`` and ``If-Range`` (RFC 9110 §13.1.5, §14).

Browsers ask for ranges to play and seek media (Safari plays no video without them), so a seek in a
25 MB video reads a slice, not the whole file. One range is answered 206 with its bytes; anything the
RFC lets a server ignore is answered with the whole file (200), which every client takes.
"""

from __future__ import annotations

import re

_SPEC = re.compile(r"([0-9]*)-([0-9]*)")   # [0-9], not \d: other scripts' digits are no byte positions
_PAST_ANY_FILE = 10**18                     # a position of more digits names no stored byte


class NotSatisfiable(Exception):
    """The one range asked for starts past the file's end (or the file is empty): answered 416."""


def requested_span(range_header: str | None, if_range: str | None, etag: str,
                   size: int) -> tuple[int, int] | None:
    """``(first, last)``, the byte positions (inclusive, clipped to the file) of the one range asked
    for; None for the whole file. Raises :class:`NotSatisfiable` for a range the file cannot answer."""
    if not range_header or not _still_the_same(if_range, etag):
        return None
    unit, equals, range_set = range_header.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None  # another unit, or no unit: the header is ignored (RFC 9110 §14.2)
    specs = [spec.strip() for spec in range_set.split(",") if spec.strip()]
    if len(specs) != 1:
        # Several ranges get the whole file: the RFC allows ignoring Range, players ask for one range,
        # and a multipart/byteranges answer would be a framing of its own for no client we serve. The
        # first range alone would hand a client that asked for more a 206 it must notice is short.
        return None
    return _span(specs[0], size)


def _still_the_same(if_range: str | None, etag: str) -> bool:
    """If-Range holds only on a strong match of our ETag; a date could only match a Last-Modified,
    which these answers do not carry: any other value asks for the whole file (RFC 9110 §13.1.5)."""
    return if_range is None or if_range.strip() == etag


def _span(spec: str, size: int) -> tuple[int, int] | None:
    match = _SPEC.fullmatch(spec)
    if match is None or match.group() == "-":
        return None  # malformed: ignored, the whole file
    first, last = (_position(digits) if digits else None for digits in match.groups())
    if first is None:  # "-n": the last n bytes
        if last == 0 or size == 0:
            raise NotSatisfiable
        return max(size - last, 0), size - 1
    if last is not None and last < first:
        return None  # "5-2" is malformed, not unsatisfiable (RFC 9110 §14.1.1)
    if first >= size:
        raise NotSatisfiable
    return first, size - 1 if last is None else min(last, size - 1)


def _position(digits: str) -> int:
    # Capped rather than converted: Python refuses int() of over 4300 digits, and any such number is
    # past every file's end anyway (a clipped last position, or an unsatisfiable first one).
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) < 18 else _PAST_ANY_FILE

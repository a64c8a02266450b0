"""Splitting a delivery's ids and keys into ``IN (...)`` lists of a size every database accepts."""

from __future__ import annotations

CHUNK = 500                      # ids per IN (...) list: far below every database's parameter limit


def chunks(values):
    values = list(values)
    for i in range(0, len(values), CHUNK):
        yield values[i:i + CHUNK]

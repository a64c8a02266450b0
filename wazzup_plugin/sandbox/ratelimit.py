"""Wazzup's rate limit as documented: at most N requests per window; the counter resets every window."""

from __future__ import annotations

import math
import threading
from datetime import datetime


class FixedWindowLimiter:
    def __init__(self):
        self._lock = threading.Lock()
        self._window_start: datetime | None = None
        self._count = 0

    def hit(self, now: datetime, limit: int, window: float) -> float | None:
        """Count one request; None when allowed, else the seconds until the counter resets."""
        with self._lock:
            if self._window_start is None or (now - self._window_start).total_seconds() >= window:
                self._window_start, self._count = now, 0
            self._count += 1
            if self._count <= limit:
                return None
            return max(0.0, window - (now - self._window_start).total_seconds())

    def reset(self) -> None:
        with self._lock:
            self._window_start, self._count = None, 0


def retry_after_header(seconds: float) -> str:
    """Whole seconds, rounded up, at least 1 (a Retry-After of 0 invites a hot loop)."""
    return str(max(1, math.ceil(seconds)))

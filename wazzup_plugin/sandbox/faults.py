"""Faults a test can inject into the sandbox's API (never into its control API).

- ``fail``: the next N calls answer an HTTP error (default 500), before or after the call took effect;
- ``slow``: the next N calls wait some seconds before answering (after taking effect, by default:
  the caller times out on a message that was in fact accepted);
- ``drop``: the next N calls lose their connection without an answer (after taking effect, by default);
- ``downtime``: for some seconds every call answers 503, or (``mode: refuse``) the server stops
  listening so that connections are refused.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

KINDS = ("fail", "slow", "drop", "downtime")
DOWNTIME_MODES = ("503", "refuse")


class FaultError(ValueError):
    pass


@dataclass
class Fault:
    kind: str
    remaining: int = 1
    status: int = 500
    seconds: float = 0.0
    after_accept: bool = False
    path: str | None = None        # only calls whose path starts with this (e.g. /v3/message)
    json_body: bool = False        # a JSON error body on `fail` (else empty, both occur)

    def matches(self, path: str) -> bool:
        return self.path is None or path.startswith(self.path)


def parse_fault(spec: dict) -> Fault | tuple[float, str]:
    """A fault from control-API JSON; ``downtime`` gives (seconds, mode)."""
    if not isinstance(spec, dict):
        raise FaultError("a fault is a JSON object with a `kind`")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise FaultError(f"kind must be one of {', '.join(KINDS)}")
    seconds = spec.get("seconds", 0 if kind != "downtime" else None)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0 or seconds > 3600:
        raise FaultError("seconds must be a number from 0 to 3600")
    if kind == "downtime":
        mode = str(spec.get("mode", "503"))
        if mode not in DOWNTIME_MODES:
            raise FaultError(f"mode must be one of {', '.join(DOWNTIME_MODES)}")
        return float(seconds), mode
    count = spec.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1_000_000:
        raise FaultError("count must be a whole number from 1")
    status = spec.get("status", 500)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise FaultError("status must be an HTTP error status (400-599)")
    after = spec.get("afterAccept", kind in ("slow", "drop"))
    path = spec.get("path")
    if not isinstance(after, bool) or (path is not None and not isinstance(path, str)):
        raise FaultError("afterAccept must be true or false and path a string")
    if kind == "slow" and seconds == 0:
        raise FaultError("a slow fault needs seconds > 0")
    return Fault(kind, count, status, float(seconds), after, path, bool(spec.get("jsonBody", False)))


class Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self._queue: list[Fault] = []
        self.downtime_until: datetime | None = None
        self.downtime_mode = "503"

    def add(self, spec: dict, now: datetime) -> dict:
        parsed = parse_fault(spec)
        with self._lock:
            if isinstance(parsed, tuple):
                seconds, mode = parsed
                self.downtime_until, self.downtime_mode = now + timedelta(seconds=seconds), mode
            else:
                self._queue.append(parsed)
        return self.to_json(now)

    def take(self, path: str) -> Fault | None:
        """Consume one use of the first fault that applies to ``path``."""
        with self._lock:
            for fault in self._queue:
                if fault.matches(path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._queue.remove(fault)
                    return fault
        return None

    def down(self, now: datetime) -> str | None:
        """The downtime mode while a downtime window is open, else None."""
        until = self.downtime_until
        if until is not None and now < until:
            return self.downtime_mode
        return None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self.downtime_until = None

    def to_json(self, now: datetime) -> dict:
        with self._lock:
            queued = [{"kind": f.kind, "remaining": f.remaining, "status": f.status, "seconds": f.seconds,
                       "afterAccept": f.after_accept, "path": f.path, "jsonBody": f.json_body} for f in self._queue]
        mode = self.down(now)
        return {"queued": queued,
                "downtime": None if mode is None else {
                    "mode": mode, "secondsLeft": round((self.downtime_until - now).total_seconds(), 3)}}

"""The objects the plugin hands the host: routes and background workers (see the host's hookspecs)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    template: str
    resource: object
    suffix: str | None = None
    public: bool = False


@dataclass(frozen=True)
class Worker:
    name: str
    argv: tuple[str, ...]

"""The host's settings, read once from the environment (over an optional ``.env`` file).

Plugins find their own settings in ``Config.env`` and validate them in their ``startup`` hook.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from dotenv import dotenv_values
from dotenv.parser import parse_stream

from host_stub.errors import StartupError

DEFAULT_DATABASE_URL = "sqlite:///helpdesk.sqlite3"
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
# HELPDESK_REQUEST_TIMEOUT: the longest a request may run (gunicorn's --timeout), and how long a stop
# waits for the requests and background work in progress (gunicorn's --graceful-timeout; serve then
# kills what is left). The default covers a plugin's slowest call out (Wazzup24: 5 s to connect,
# 20 s to read, 3 s for its rate limiter, a margin) with room to spare.
DEFAULT_REQUEST_TIMEOUT, MIN_REQUEST_TIMEOUT = 60, 10


def shown_database_url(raw: str) -> str:
    """A database URL as messages may show it: its password (everything before the host) masked,
    even when the URL does not parse."""
    scheme, sep, rest = raw.rpartition("://")
    if "@" not in rest:
        return raw
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"


def read_environment(environ: Mapping[str, str] | None = None, dotenv_path: str | os.PathLike | None = ".env"):
    """The settings mapping: the ``.env`` file's values, overridden by the real environment."""
    values: dict[str, str] = {}
    if dotenv_path and Path(dotenv_path).is_file():
        _refuse_unreadable_lines(Path(dotenv_path))
        values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    return values


def _refuse_unreadable_lines(path: Path) -> None:
    """A line python-dotenv cannot read (an unclosed quote) is skipped with a warning, and the setting
    on it is then missing, reported as \"not set\": name the file, the line and the setting instead.
    The value is not shown: it may be a secret."""
    with path.open(encoding="utf-8") as stream:
        for binding in parse_stream(stream):
            if binding.error:
                statement = binding.original.string
                name = statement.split("=", 1)[0].strip() if "=" in statement else ""
                setting = f" ({name}=…)" if name.isidentifier() else ""
                raise StartupError(
                    f"{path} line {binding.original.line}{setting} cannot be read: check its quotes "
                    "(a value with spaces or # goes in quotes, and every quote opened is closed)")


def _int_setting(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise StartupError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise StartupError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Config:
    """Validated host settings. Build with :meth:`from_env`; tests build it directly."""

    database_url: str = DEFAULT_DATABASE_URL
    secret_key: str = ""
    plugins: frozenset[str] | None = None  # None: every installed plugin
    log_level: str = "INFO"
    log_format: str = "text"
    log_file: str | None = None
    sqlite_synchronous: str = "FULL"
    session_ttl_seconds: int = 12 * 3600
    max_body_bytes: int = 32 * 1024 * 1024
    request_timeout_seconds: int = DEFAULT_REQUEST_TIMEOUT
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, dotenv_path=".env") -> "Config":
        env = read_environment(environ, dotenv_path)
        from host_stub.plugins import parse_enabled

        plugins = parse_enabled(env.get("HELPDESK_PLUGINS"))
        config = cls(
            database_url=env.get("HELPDESK_DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL,
            secret_key=env.get("HELPDESK_SECRET_KEY", ""),
            plugins=plugins,
            log_level=env.get("HELPDESK_LOG_LEVEL", "INFO").strip().upper() or "INFO",
            log_format=env.get("HELPDESK_LOG_FORMAT", "text").strip().lower() or "text",
            log_file=env.get("HELPDESK_LOG_FILE", "").strip() or None,
            sqlite_synchronous=env.get("HELPDESK_SQLITE_SYNCHRONOUS", "FULL").strip().upper() or "FULL",
            session_ttl_seconds=_int_setting(env, "HELPDESK_SESSION_TTL_SECONDS", 12 * 3600, 60),
            max_body_bytes=_int_setting(env, "HELPDESK_MAX_BODY_BYTES", 32 * 1024 * 1024, 1024),
            request_timeout_seconds=_int_setting(env, "HELPDESK_REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT,
                                                 MIN_REQUEST_TIMEOUT),
            env=env,
        )
        config.validate()
        return config

    def validate(self) -> None:
        """Raise :class:`StartupError` naming the setting that is wrong."""
        if "://" not in self.database_url:
            raise StartupError(
                f"HELPDESK_DATABASE_URL must be a database URL such as sqlite:///helpdesk.sqlite3 "
                f"or postgresql+psycopg://user@host/db, got {shown_database_url(self.database_url)!r}")
        if self.database_url.startswith("postgres:"):  # the spelling many hosting providers hand out
            raise StartupError("HELPDESK_DATABASE_URL starts with postgres://, which SQLAlchemy does not read: "
                               "write postgresql+psycopg:// instead (the rest stays as it is)")
        if not self.database_url.startswith(("sqlite", "postgresql")):
            raise StartupError("HELPDESK_DATABASE_URL must point at SQLite (sqlite:///…) or PostgreSQL "
                               "(postgresql+psycopg://…)")
        try:
            sa.engine.make_url(self.database_url)
        except (ValueError, sa.exc.ArgumentError) as exc:  # e.g. a port that is not a number
            raise StartupError(f"HELPDESK_DATABASE_URL is not a valid database URL ({exc}): "
                               f"{shown_database_url(self.database_url)!r}") from None
        if self.log_level not in LOG_LEVELS:
            raise StartupError(f"HELPDESK_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        if self.log_format not in LOG_FORMATS:
            raise StartupError(f"HELPDESK_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {self.log_format!r}")
        if self.sqlite_synchronous not in SQLITE_SYNCHRONOUS:
            raise StartupError(
                f"HELPDESK_SQLITE_SYNCHRONOUS must be one of {', '.join(SQLITE_SYNCHRONOUS)}, "
                f"got {self.sqlite_synchronous!r}")
        if self.log_file:
            self._check_log_file(Path(self.log_file))

    @staticmethod
    def _check_log_file(path: Path) -> None:
        """HELPDESK_LOG_FILE is opened for appending at startup: its directory must exist and be writable."""
        directory = path.parent
        if not directory.is_dir():
            raise StartupError(f"HELPDESK_LOG_FILE is {str(path)!r}, but its directory {str(directory)!r} "
                               "does not exist: create it or choose another path")
        if path.is_dir():
            raise StartupError(f"HELPDESK_LOG_FILE is {str(path)!r}, which is a directory, not a file")
        if not os.access(path if path.exists() else directory, os.W_OK):
            raise StartupError(f"HELPDESK_LOG_FILE is {str(path)!r}, but "
                               f"{'the file' if path.exists() else 'its directory'} is not writable")

    def secret_values(self) -> list[str]:
        """Values that must never reach a log line or a response."""
        markers = ("KEY", "SECRET", "TOKEN", "PASSWORD")
        return [v for k, v in self.env.items()
                if any(m in k.upper() for m in markers) and isinstance(v, str) and len(v) >= 6]

"""Logging configured once: level, text or JSON lines, stderr or a file, secrets masked everywhere."""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
from datetime import datetime, timezone
from urllib.parse import unquote_plus

_PATTERNS = [
    re.compile(r"(?i)(authorization:\s*bearer\s+)[^\s,'\"]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)([?&](?:token|secret|key|api_key|apikey|crmkey)=)[^&\s'\"]+"),
    re.compile(r"(?i)((?:api[_-]?key|secret|password|token)[\"']?\s*[:=]\s*[\"']?)[^\s,'\"&]{6,}"),
    # The host's API tokens wherever they appear (a path, a search, a form field): "hdt_" and
    # token_urlsafe(32), 43 characters of [A-Za-z0-9_-] (host_stub/auth.py new_token); a cut-off
    # one still masked. The prefix stays, so a line still says a token was there.
    re.compile(r"(hdt_)[A-Za-z0-9_-]{16,}"),
]
MASK = "***"
_SECRET_PARAMS = {"token", "secret", "key", "api_key", "apikey", "crmkey"}

# Text a client sent (a contact's name, a webhook's notice) can reach a log line: a line break in it
# would forge a second line, and a lone surrogate (from a JSON ``\\ud800`` escape) cannot be written
# at all. Control characters are shown as escapes; the exception's traceback keeps its lines.
_ESCAPES = {**{i: f"\\x{i:02x}" for i in range(32) if i != 9}, 10: "\\n", 13: "\\r", 0x7F: "\\x7f",
            0x85: "\\x85", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def one_line(text: str) -> str:
    """``text`` on one line, every character writable as UTF-8."""
    return writable(text.translate(_ESCAPES))


def writable(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class SecretsFilter(logging.Filter):
    """Rewrites every record so that known secret values and credential patterns never get out."""

    def __init__(self, secrets=()):
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)
        # The plugins' own (``register_log_masks``): group 1 stays, the rest of a match is masked.
        self.patterns: list[re.Pattern] = []

    def add(self, *values: str) -> None:
        self.secrets = sorted({*self.secrets, *(v for v in values if v and len(v) >= 6)}, key=len, reverse=True)

    def add_patterns(self, *patterns: re.Pattern) -> None:
        self.patterns.extend(p for p in patterns if p not in self.patterns)

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        for pattern in (*_PATTERNS, *self.patterns):
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text

    def mask_query(self, query: str) -> str:
        """A URL's query string with every credential parameter's value masked, however it is
        percent-encoded (``tok%65n=%73…`` is ``token=s…`` to the server that reads it)."""
        parts = []
        for part in query.split("&"):
            name, sep, value = part.partition("=")
            decoded_name, decoded_value = unquote_plus(name).lower(), unquote_plus(value)
            if sep and (decoded_name in _SECRET_PARAMS or self.mask(decoded_value) != decoded_value):
                part = f"{name}={MASK}"
            parts.append(part)
        return "&".join(parts)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.mask(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        context = getattr(record, "context", None)
        if isinstance(context, dict):
            record.context = {k: self.mask(v) if isinstance(v, str) else v for k, v in context.items()}
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = getattr(record, "context", None)
        if isinstance(context, dict):
            entry.update(context)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return writable(json.dumps(entry, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        context = getattr(record, "context", None)
        if isinstance(context, dict) and context:
            text += " " + " ".join(f"{k}={v}" for k, v in context.items())
        text = one_line(text)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + writable(record.exc_text)
        if record.stack_info:
            text += "\n" + writable(self.formatStack(record.stack_info))
        return text


_FILTER = SecretsFilter()


def secrets_filter() -> SecretsFilter:
    """The process-wide filter (gunicorn's access log uses it too)."""
    return _FILTER


def configure_logging(config, stream=None) -> logging.Handler:
    """Install one handler on the root logger; returns it. Safe to call again (replaces it)."""
    _FILTER.add(*config.secret_values())
    handler: logging.Handler
    if config.log_file:
        # Watched: a file moved away by logrotate is reopened at the next line, in every process that
        # writes it (gunicorn's master and workers, the background workers), with no signal to send.
        handler = logging.handlers.WatchedFileHandler(config.log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if config.log_format == "json" else TextFormatter())
    handler.addFilter(_FILTER)
    handler.set_name("helpdesk")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "helpdesk"]:
        root.removeHandler(old)
        old.close()  # its file (a forked worker inherits the master's): not left open
    root.addHandler(handler)
    root.setLevel(config.log_level)
    return handler

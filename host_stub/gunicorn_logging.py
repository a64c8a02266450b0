"""gunicorn's error and access logs through the helpdesk's own log handler, with secrets masked.

``--error-logfile -`` (gunicorn's default) and ``--access-logfile -`` (what ``serve`` passes) mean
"the helpdesk's log": the ``gunicorn.error`` and ``gunicorn.access`` loggers lose gunicorn's
stdout/stderr handlers and propagate to the root logger, where ``configure_logging`` installed the one
``helpdesk`` handler (``HELPDESK_LOG_FILE`` or stderr, ``HELPDESK_LOG_FORMAT`` text or JSON, secrets
masked). A worker's app configures logging again after the fork; the lines then go through its handler,
still one path, so nothing is written twice. An explicit file (``--access-logfile access.log``) is the
operator's choice and keeps gunicorn's own handler and format, with the same mask. A gunicorn logging
config (``--log-config``, ``--log-config-dict``, ``--log-config-json``) is left alone.

gunicorn's levels stay gunicorn's: ``--log-level`` for the error log, every request for the access log
(``HELPDESK_LOG_LEVEL`` sets the root logger's level, which propagated records do not consult).
"""

from __future__ import annotations

import logging
import traceback

from gunicorn.glogging import Logger

from host_stub.config import Config
from host_stub.logging_setup import configure_logging, secrets_filter

_CREDENTIAL_ATOMS = ("{authorization}i", "{cookie}i", "{http_authorization}e", "{http_cookie}e")


class MaskingLogger(Logger):
    def setup(self, cfg):
        super().setup(cfg)
        config = Config.from_env()
        secrets_filter().add(*config.secret_values())
        self._json = config.log_format == "json"
        self._routed_access = False
        if cfg.logconfig or cfg.logconfig_dict or cfg.logconfig_json:
            return  # the operator's own logging configuration decides
        outputs = ((self.error_log, cfg.errorlog), (self.access_log, cfg.accesslog))
        if any(output == "-" for _, output in outputs):
            configure_logging(config)  # replaces (and closes) the handler of a previous setup: a reload
        for log, output in outputs:
            if output == "-":
                for handler in [h for h in log.handlers if _is_gunicorn_stream_handler(h)]:
                    log.removeHandler(handler)
                log.propagate = True
            else:
                log.propagate = False
                for handler in log.handlers:
                    if getattr(handler, "_gunicorn", False) and secrets_filter() not in handler.filters:
                        handler.addFilter(secrets_filter())
        self._routed_access = cfg.accesslog == "-"

    def access(self, resp, req, environ, request_time):
        if not self._routed_access:
            return super().access(resp, req, environ, request_time)
        if not self.access_log_enabled:
            return
        try:
            atoms = self.atoms(resp, req, environ, request_time)
            duration_ms = round(request_time.total_seconds() * 1000, 1)
            safe = self.atoms_wrapper_class(atoms)  # quotes escaped, a missing atom is "-"
            if self.cfg.access_log_format != self.cfg.settings["access_log_format"].default:
                message = self.cfg.access_log_format % safe
            else:
                message = f'{safe["h"]} "{safe["r"]}" {safe["s"]} {safe["b"]} {duration_ms}ms'
            extra = None
            if self._json:
                extra = {"context": {
                    "remote_addr": atoms["h"], "method": atoms["m"], "path": _path(atoms),
                    "protocol": atoms["H"], "status": _status(atoms["s"]), "bytes": atoms["B"],
                    "duration_ms": duration_ms, "user_agent": atoms["a"],
                }}
            self.access_log.info(message, extra=extra)
        except Exception:
            self.error(traceback.format_exc())

    def atoms(self, resp, req, environ, request_time):
        secrets = secrets_filter()
        query = environ.get("QUERY_STRING") or ""
        masked_query = secrets.mask_query(query) if query else query

        def mask(value: str) -> str:
            if masked_query != query:  # the request line, the URL and the query carry it as sent
                value = value.replace(query, masked_query)
            return secrets.mask(value)

        return {k: (mask(v) if isinstance(v, str) else v)
                for k, v in super().atoms(resp, req, environ, request_time).items()
                if k not in _CREDENTIAL_ATOMS}


def _is_gunicorn_stream_handler(handler: logging.Handler) -> bool:
    """The stdout/stderr handler gunicorn adds for ``-`` (not its file or syslog handlers)."""
    return getattr(handler, "_gunicorn", False) and type(handler) is logging.StreamHandler


def _path(atoms: dict) -> str:
    """The URL as sent, its query masked (``atoms`` are masked already)."""
    raw = atoms.get("{raw_uri}e")
    if isinstance(raw, str) and raw:
        return raw
    query = atoms.get("q") or ""
    return (atoms.get("U") or "") + ("?" + query if query else "")


def _status(status):
    try:
        return int(status)
    except (TypeError, ValueError):
        return status

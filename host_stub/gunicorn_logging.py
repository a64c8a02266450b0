"""gunicorn's access log, with secrets masked (a webhook secret may ride in the query string)."""

from __future__ import annotations

from gunicorn.glogging import Logger

from host_stub.config import Config
from host_stub.logging_setup import secrets_filter


class MaskingLogger(Logger):
    def setup(self, cfg):
        super().setup(cfg)
        secrets_filter().add(*Config.from_env().secret_values())

    def atoms(self, resp, req, environ, request_time):
        mask = secrets_filter().mask
        return {k: (mask(v) if isinstance(v, str) else v)
                for k, v in super().atoms(resp, req, environ, request_time).items()
                if k not in ("{authorization}i", "{cookie}i", "{http_authorization}e", "{http_cookie}e")}

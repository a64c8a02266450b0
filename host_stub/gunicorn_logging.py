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
        secrets = secrets_filter()
        query = environ.get("QUERY_STRING") or ""
        masked_query = secrets.mask_query(query) if query else query

        def mask(value: str) -> str:
            if masked_query != query:  # the request line, the URL and the query carry it as sent
                value = value.replace(query, masked_query)
            return secrets.mask(value)

        return {k: (mask(v) if isinstance(v, str) else v)
                for k, v in super().atoms(resp, req, environ, request_time).items()
                if k not in ("{authorization}i", "{cookie}i", "{http_authorization}e", "{http_cookie}e")}

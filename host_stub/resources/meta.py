"""Health, chat types, plugins and the OpenAPI document."""

from __future__ import annotations

import logging

import falcon
import sqlalchemy as sa

from host_stub.schemas import ChatTypeSchema, ErrorSchema

log = logging.getLogger(__name__)


class HealthResource:
    openapi = {"get": {
        "summary": "Liveness and database check (no authentication)",
        "security": [],
        "responses": {"200": {"description": "up"},
                      "503": {"description": "database unavailable",
                              "content": {"application/json": {"schema": ErrorSchema}}}},
    }}

    def __init__(self, helpdesk):
        self.helpdesk = helpdesk

    def on_get(self, req, resp):
        try:
            with self.helpdesk.db.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            log.warning("health check: database unavailable (%s)", type(exc).__name__)
            resp.status = falcon.HTTP_503
            resp.media = {"status": 503, "code": "database_unavailable", "message": "The database is unavailable."}
            return
        resp.media = {"status": "ok", "database": "ok"}


class ChatTypesResource:
    openapi = {"get": {
        "summary": "Registered chat types (name, label, icon, UI panel)",
        "responses": {"200": {"description": "chat types", "content": {"application/json": {
            "schema": {"type": "object", "properties": {
                "items": {"type": "array", "items": ChatTypeSchema},
                "unknown": ChatTypeSchema}}}}}},
        "description": "A chat whose type is not listed (its plugin is disabled) is shown as `unknown`.",
    }}

    def __init__(self, helpdesk):
        self.helpdesk = helpdesk

    def on_get(self, req, resp):
        resp.media = {"items": [t.to_json() for t in self.helpdesk.chat_types.all()],
                      "unknown": self.helpdesk.chat_types.UNKNOWN.to_json()}


class PluginsResource:
    openapi = {"get": {
        "summary": "Enabled plugins with their versions",
        "responses": {"200": {"description": "plugins"}},
    }}

    def __init__(self, helpdesk):
        self.helpdesk = helpdesk

    def on_get(self, req, resp):
        resp.media = {"items": self.helpdesk.plugins()}


class OpenApiResource:
    openapi = {"get": {"summary": "This OpenAPI document", "security": [],
                       "responses": {"200": {"description": "OpenAPI 3 document"}}}}

    def __init__(self, spec_factory):
        self._factory = spec_factory
        self._doc = None

    def on_get(self, req, resp):
        if self._doc is None:
            self._doc = self._factory()
        resp.media = self._doc

"""The ``Helpdesk`` facade handed to plugins, and ``create_app(config, pm)``."""

from __future__ import annotations

import logging
from typing import Callable

import falcon
import requests

from host_stub import __version__
from host_stub.auth import AuthMiddleware
from host_stub.config import Config
from host_stub.db import Database, make_engine
from host_stub.errors import StartupError, http_error_handler, unexpected_error_handler
from host_stub import json_media
from host_stub.middleware import BodyLimitMiddleware, PathIdRangeMiddleware, SecurityHeadersMiddleware
from host_stub.models import utcnow
from host_stub.plugins import plugin_manifests
from host_stub.registry import RouteInfo, collect
from host_stub.resources.chats import ChatReadResource, ChatResource, ChatsResource
from host_stub.resources.messages import MessagesResource
from host_stub.resources.pages import PAGE_SEQ
from host_stub.resources.meta import ChatTypesResource, HealthResource, OpenApiResource, PluginsResource
from host_stub.schema import assemble_metadata
from host_stub.schemas import ChatSchema, MessageSchema, extend_schema, page_schema
from host_stub.serializer import Serializer

log = logging.getLogger(__name__)


class Tables:
    """The host tables plugins may read and write (SQLAlchemy Core), from the app's ``MetaData``."""

    def __init__(self, metadata):
        self.chats = metadata.tables["chats"]
        self.messages = metadata.tables["messages"]
        self.agents = metadata.tables["agents"]


class Helpdesk:
    """Everything a plugin may use, passed as the ``helpdesk`` argument of hooks."""

    def __init__(self, config: Config, pm, engine=None, http: requests.Session | None = None,
                 clock: Callable | None = None):
        self.config = config
        self.pm = pm
        self.clock = clock or utcnow
        self.http = http or requests.Session()
        self.metadata, self.migration_dirs = assemble_metadata(pm)
        self.tables = Tables(self.metadata)
        engine = engine or make_engine(config.database_url, config.sqlite_synchronous)
        self.db = Database(engine, on_commit=self._changes_committed)
        self.plugin_state: dict = {}
        self.registrations = None
        self.serializer = None  # set by create_app once every plugin's fields are known

    @property
    def chat_types(self):
        return self.registrations.chat_types

    def serialize_chats(self, conn, rows) -> list[dict]:
        """Chat rows as the API serves them (host columns plus every plugin's fields)."""
        return self.serializer.chats(conn, rows)

    def serialize_messages(self, conn, rows) -> list[dict]:
        """Message rows as the API serves them (host columns plus every plugin's fields)."""
        return self.serializer.messages(conn, rows)

    def plugins(self) -> list[dict]:
        return plugin_manifests(self.pm)

    def _changes_committed(self, chat_ids, message_ids):
        try:
            self.pm.hook.changes_committed(helpdesk=self, chat_ids=set(chat_ids), message_ids=set(message_ids))
        except Exception:  # the data is committed; a listener's failure must not fail the writer
            log.exception("a changes_committed listener failed")

    def agents_access_changed(self, agent_ids, active: bool) -> None:
        """Tell the plugins, once the change is committed, that these agents lost (``active=False``) or
        regained access (the ``agents_access_changed`` hook); a plugin's failure is logged, not raised."""
        try:
            self.pm.hook.agents_access_changed(helpdesk=self, agent_ids=set(agent_ids), active=active)
        except Exception:  # the change is committed; a listener's failure must not fail the caller
            log.exception("an agents_access_changed listener failed")


class HelpdeskApp(falcon.App):
    """A Falcon app that carries its helpdesk (``app.helpdesk``) for the CLI and tests."""

    helpdesk: Helpdesk


class HeadAsGetRouter(falcon.routing.CompiledRouter):
    """Every route that answers GET answers HEAD the same way (RFC 9110), the host's and plugins' alike.

    HEAD runs the GET responder, so authentication, status and headers are GET's; Falcon sends no
    body for HEAD (its Content-Length stays GET's). A resource's own ``on_head`` is kept."""

    def map_http_methods(self, resource, **kwargs):
        method_map = super().map_http_methods(resource, **kwargs)
        if "GET" in method_map and "HEAD" not in method_map:
            method_map["HEAD"] = method_map["GET"]
        return method_map


def host_routes(helpdesk: Helpdesk, openapi_factory) -> list[RouteInfo]:
    return [
        RouteInfo("/api/health", HealthResource(helpdesk), public=True, plugin="host"),
        RouteInfo("/api/openapi.json", OpenApiResource(openapi_factory), public=True, plugin="host"),
        RouteInfo("/api/chat-types", ChatTypesResource(helpdesk), plugin="host"),
        RouteInfo("/api/plugins", PluginsResource(helpdesk), plugin="host"),
        RouteInfo("/api/chats", ChatsResource(helpdesk), plugin="host"),
        RouteInfo("/api/chats/{chat_id:int}", ChatResource(helpdesk), plugin="host"),
        RouteInfo("/api/chats/{chat_id:int}/read", ChatReadResource(helpdesk), plugin="host"),
        RouteInfo("/api/chats/{chat_id:int}/messages", MessagesResource(helpdesk), plugin="host"),
    ]


def _startup_error(exc: Exception) -> StartupError:
    """A plugin's own refusal (a ValueError naming a setting) reads as is; anything else says what it was."""
    if isinstance(exc, ValueError):
        return StartupError(str(exc))
    return StartupError(f"a plugin failed while the helpdesk was built: {type(exc).__name__}: {exc}")


def create_app(config: Config, pm, *, engine=None, http=None, clock=None) -> falcon.App:
    """Build the helpdesk: validate plugins and settings, wire routes; serve nothing yet."""
    from host_stub.openapi import build_openapi
    from host_stub.ui import install_static, ui_routes

    config.validate()
    helpdesk = Helpdesk(config, pm, engine=engine, http=http, clock=clock)
    # Plugin field names may clash neither with the host's JSON fields nor with the columns its page
    # queries read (plugin fields can be joined into them).
    host_field_names = {
        "chat": {*ChatSchema._declared_fields, *helpdesk.tables.chats.c.keys(), PAGE_SEQ},
        "message": {*MessageSchema._declared_fields, *helpdesk.tables.messages.c.keys(), PAGE_SEQ}}

    def openapi_factory():
        return build_openapi(helpdesk.registrations.routes, components, "Helpdesk API", __version__)

    routes = host_routes(helpdesk, openapi_factory)
    try:
        helpdesk.registrations = regs = collect(pm, helpdesk, host_field_names, routes + ui_routes(helpdesk))
    except StartupError:
        raise
    except Exception as exc:  # a plugin's own validation (e.g. of its settings) failed
        raise _startup_error(exc) from exc
    chat_out = extend_schema(ChatSchema, {k: v for fs in regs.chat_fields for k, v in fs.fields.items()}, "Chat")
    message_out = extend_schema(MessageSchema, {k: v for fs in regs.message_fields for k, v in fs.fields.items()},
                                "Message")
    # Resources were built before every plugin's fields were known; they serialize through the
    # helpdesk, which has the serializer from here on.
    helpdesk.serializer = Serializer(chat_out, message_out, regs.chat_fields, regs.message_fields)
    components = {"Chat": chat_out, "Message": message_out,
                  "ChatPage": page_schema("ChatPage", chat_out), "MessagePage": page_schema("MessagePage", message_out)}

    app = HelpdeskApp(router=HeadAsGetRouter(), middleware=[
        BodyLimitMiddleware(config.max_body_bytes),
        AuthMiddleware(helpdesk, {r.template for r in regs.routes if r.public}),
        PathIdRangeMiddleware(),
        SecurityHeadersMiddleware(),
    ])
    app.req_options.strip_url_path_trailing_slash = True
    json_media.install(app)
    app.add_error_handler(Exception, unexpected_error_handler)
    app.add_error_handler(falcon.HTTPError, http_error_handler)
    for route in regs.routes:
        try:
            app.add_route(route.template, route.resource, **({"suffix": route.suffix} if route.suffix else {}))
        except ValueError as exc:  # e.g. a template that clashes with another one's field names
            raise StartupError(f"route {route.template!r} of {route.plugin!r} cannot be served: {exc}") from None
    install_static(app, helpdesk)  # before the plugins' static routes, which then win for their prefix
    for ui in regs.ui:
        app.add_static_route(f"/static/plugins/{ui.name}", ui.static_dir)
    try:
        pm.hook.startup(helpdesk=helpdesk)
    except StartupError:
        raise
    except Exception as exc:
        raise _startup_error(exc) from exc
    app.helpdesk = helpdesk
    return app

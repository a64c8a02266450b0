"""What plugins register, collected and checked once at startup.

Plugins return plain objects (they never import the host); the host reads the attributes the
contract names and stops startup with a clear message on a duplicate or a malformed item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.sql import util as sa_util

from host_stub.errors import StartupError

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True)
class ChatTypeInfo:
    name: str
    label: str
    icon: str
    panel: str | None = None
    can_compose: bool = False
    plugin: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "label": self.label, "icon": self.icon, "panel": self.panel,
                "can_compose": self.can_compose}


class ChatTypeRegistry:
    """Chat types by name. A chat whose type is not registered is still served, as unknown."""

    UNKNOWN = ChatTypeInfo("unknown", "Unknown channel", "/static/icons/unknown.svg", plugin="host")

    def __init__(self):
        self._types: dict[str, ChatTypeInfo] = {}

    def add(self, obj, plugin: str) -> None:
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not _NAME.match(name):
            raise StartupError(f"plugin {plugin!r} registered a chat type with an invalid name {name!r}")
        if name in self._types:
            raise StartupError(
                f"chat type {name!r} is registered twice: by {self._types[name].plugin!r} and by {plugin!r}")
        self._types[name] = ChatTypeInfo(
            name=name, label=str(getattr(obj, "label", name)), icon=str(getattr(obj, "icon", self.UNKNOWN.icon)),
            panel=getattr(obj, "panel", None), can_compose=bool(getattr(obj, "can_compose", False)), plugin=plugin)

    def get(self, name: str) -> ChatTypeInfo | None:
        return self._types.get(name)

    def names(self) -> list[str]:
        return sorted(self._types)

    def all(self) -> list[ChatTypeInfo]:
        return [self._types[n] for n in self.names()]


@dataclass(frozen=True)
class FieldSet:
    entity: str
    fields: dict
    load: object
    plugin: str = ""
    # Optional: the fields as columns of one plugin table holding at most one row per chat/message
    # (``key`` is its column equal to the entity's id). The host then outer-joins them into its
    # page queries instead of calling ``load`` (one query fewer per page).
    table: object = None
    key: object = None
    columns: dict | None = None


@dataclass(frozen=True)
class RouteInfo:
    template: str
    resource: object
    suffix: str | None = None
    public: bool = False
    plugin: str = ""


@dataclass(frozen=True)
class UiInfo:
    name: str
    static_dir: str
    scripts: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    argv: tuple[str, ...]


@dataclass
class Registrations:
    chat_types: ChatTypeRegistry = field(default_factory=ChatTypeRegistry)
    chat_fields: list[FieldSet] = field(default_factory=list)
    message_fields: list[FieldSet] = field(default_factory=list)
    routes: list[RouteInfo] = field(default_factory=list)
    ui: list[UiInfo] = field(default_factory=list)
    workers: list[WorkerInfo] = field(default_factory=list)


def _per_plugin(pm, hook_name: str, **kwargs):
    """Call a hook implementation by implementation, so every item can be traced to its plugin.

    Registration order (the host's built-ins first): on a clash, the plugin registered earlier
    is named first in the message."""
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        result = impl.function(**{a: kwargs[a] for a in impl.argnames})
        yield impl.plugin_name, result


def _from_tables(column) -> set:
    """The tables a field set's column reads: its own table, or every table a SQL expression names."""
    if isinstance(column, sa.Column):
        return {column.table}
    if isinstance(column, sa.ColumnElement):
        return set(sa_util.find_tables(column, check_columns=True)) or {None}
    return {None}


def _check_joinable(plugin: str, entity: str, obj, columns: dict, host_table: sa.Table | None = None) -> None:
    """A joined field set must be columns of its own table, or expressions over it and the host's table of
    the entity (nothing else is in the page query's FROM), keyed by a unique column (one row per id)."""
    if set(columns) != set(obj.fields):
        raise StartupError(f"plugin {plugin!r}: {entity} field set columns {sorted(columns)} must name "
                           f"exactly its fields {sorted(obj.fields)}")
    table, key = getattr(obj, "table", None), getattr(obj, "key", None)
    if table is None or key is None:
        raise StartupError(f"plugin {plugin!r}: a {entity} field set with columns needs its table and key")
    allowed = {table, host_table} - {None}
    foreign = sorted(["key"] * (getattr(key, "table", None) is not table)
                     + [name for name, col in columns.items() if not _from_tables(col) <= allowed])
    if foreign:
        raise StartupError(f"plugin {plugin!r}: {entity} field set {foreign} are not columns of {table.name!r}"
                           + (f" nor expressions over it and {host_table.name!r}" if host_table is not None else ""))
    unique = key.primary_key and len(table.primary_key.columns) == 1 or any(
        len(c.columns) == 1 and key in c.columns for c in table.constraints if isinstance(c, sa.UniqueConstraint))
    if not unique:
        raise StartupError(f"plugin {plugin!r}: {entity} field set key {key.name!r} of {table.name!r} is not unique, "
                           "so joining it could repeat rows")


def collect(pm, helpdesk, reserved_fields: dict[str, set[str]], host_routes: list[RouteInfo]) -> Registrations:
    regs = Registrations()
    for plugin, items in _per_plugin(pm, "register_chat_types", helpdesk=helpdesk):
        for obj in items or ():
            regs.chat_types.add(obj, plugin)

    seen_fields = {entity: {n: "host" for n in names} for entity, names in reserved_fields.items()}
    for plugin, items in _per_plugin(pm, "register_fields", helpdesk=helpdesk):
        for obj in items or ():
            entity = getattr(obj, "entity", None)
            if entity not in ("chat", "message"):
                raise StartupError(f"plugin {plugin!r} registered fields for {entity!r}; use 'chat' or 'message'")
            for fname in getattr(obj, "fields", {}):
                if fname in seen_fields[entity]:
                    raise StartupError(f"{entity} field {fname!r} is registered twice: by "
                                       f"{seen_fields[entity][fname]!r} and by {plugin!r}")
                seen_fields[entity][fname] = plugin
            columns = getattr(obj, "columns", None)
            if columns is not None:
                host_tables = getattr(helpdesk, "tables", None)
                _check_joinable(plugin, entity, obj, columns,
                                getattr(host_tables, "chats" if entity == "chat" else "messages", None))
            fs = FieldSet(entity, dict(obj.fields), obj.load, plugin, getattr(obj, "table", None),
                          getattr(obj, "key", None), dict(columns) if columns is not None else None)
            (regs.chat_fields if entity == "chat" else regs.message_fields).append(fs)

    owners = {r.template: r.plugin for r in host_routes}
    regs.routes.extend(host_routes)
    for plugin, items in _per_plugin(pm, "register_routes", helpdesk=helpdesk):
        for obj in items or ():
            template = getattr(obj, "template", None)
            if not isinstance(template, str) or not template.startswith("/"):
                raise StartupError(f"plugin {plugin!r} registered a route without a URI template")
            if getattr(obj, "resource", None) is None:
                raise StartupError(f"plugin {plugin!r} registered route {template!r} without a resource")
            # Falcon serves one resource per template (a suffix only picks its responders).
            if template in owners:
                raise StartupError(f"route {template!r} is registered twice: by {owners[template]!r} "
                                   f"and by {plugin!r}")
            owners[template] = plugin
            regs.routes.append(RouteInfo(template, obj.resource, getattr(obj, "suffix", None),
                                         bool(getattr(obj, "public", False)), plugin))

    for plugin, obj in _per_plugin(pm, "register_ui", helpdesk=helpdesk):
        if obj is None:
            continue
        regs.ui.append(UiInfo(obj.name, str(obj.static_dir), tuple(getattr(obj, "scripts", ())),
                              tuple(getattr(obj, "styles", ()))))
    names = [u.name for u in regs.ui]
    if len(names) != len(set(names)):
        raise StartupError(f"two plugins registered UI assets under the same name: {names}")

    for plugin, items in _per_plugin(pm, "register_workers", helpdesk=helpdesk):
        for obj in items or ():
            regs.workers.append(WorkerInfo(obj.name, tuple(obj.argv)))
    return regs

"""Chats and messages to JSON: host columns plus plugin fields, loaded once per page.

The JSON is what the marshmallow schema's ``dump`` gives, to the byte; only the cost differs.
``schema.dump`` asks every field of every row to look its value up and format it through several
layers of calls, which was most of a page's time. :class:`CompiledDump` reads the schema's
fields once per app and builds one function that formats a row directly: for the field types
the host's schemas use (``Integer``, ``String``, ``Boolean`` and the ``DateTime`` family, exact
classes only) it formats the common values (``int``, ``str``, ``datetime``, ``None``) inline and
hands any other value to that field's own ``_serialize``; every other field (a plugin may
register any marshmallow field) is dumped by marshmallow itself, field by field. A schema with
dump hooks or its own attribute lookup is dumped by marshmallow whole.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import sqlalchemy as sa
from marshmallow import Schema, fields
from marshmallow.decorators import POST_DUMP, PRE_DUMP
from marshmallow.utils import missing

from host_stub.models import UTCDateTime

_ISO_FORMATS = ("iso", "iso8601")
_UNSET = object()
_DATETIME_FIELDS = (fields.DateTime, fields.AwareDateTime, fields.NaiveDateTime)


class StoredText(NamedTuple):
    """How a date column read as its stored text becomes the answer's string (``isoformat``) or a value."""

    isoformat: Callable[[Any], Any]
    value: Callable[[Any], Any]


class CompiledDump:
    """``schema.dump(rows, many=True)`` for rows that are mappings (dicts, SQLAlchemy row mappings)."""

    def __init__(self, schema: Schema):
        self.schema = schema
        self.plan = _plan(schema)  # [(output key, how, field)], or None: marshmallow dumps the schema whole
        self._one = _compile(self.plan, schema) if self.plan is not None else None
        self._by_layout: dict[tuple, Callable | None] = {}

    def sequences(self, keys: tuple[str, ...], rows, stored: Mapping[str, StoredText]) -> list[dict] | None:
        """The same dump for rows that are sequences in the order of ``keys`` (SQLAlchemy rows as fetched).

        Building a dict per row only to read it again cost a tenth of a page. ``stored`` names the
        date columns read as their stored text: an ISO field formats them with ``isoformat``.
        None when this layout cannot be dumped so (a field marshmallow dumps itself needs a mapping,
        a field the keys lack, stored text under a field of another format): make dicts then.
        """
        layout = (keys, tuple(stored.items()))
        one = self._by_layout.get(layout, _UNSET)
        if one is _UNSET:
            one = self._by_layout[layout] = (
                _compile(self.plan, self.schema, keys, stored) if self.plan is not None else None)
        if one is None:
            return None
        return [one(row) for row in rows]

    def __call__(self, rows) -> list[dict]:
        one = self._one
        if one is None:
            return self.schema.dump(rows, many=True)
        out = []
        for row in rows:
            try:
                out.append(one(row))
            except KeyError:
                # A value is not in the row: marshmallow then looks for an attribute, a dump
                # default, or leaves the key out. Rare (our rows carry every field): let it decide.
                out.append(self.schema.dump(row, many=False))
        return out


def _whole_schema_only(schema: Schema) -> bool:
    """Whether the schema changes dumping as a whole (hooks, lookup, output class): marshmallow then dumps it."""
    cls = type(schema)
    return bool(schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP]
                or cls.get_attribute is not Schema.get_attribute
                or cls._serialize is not Schema._serialize
                or cls.dump is not Schema.dump
                or schema.dict_class is not dict)


def _kind(field: fields.Field) -> str:
    """How a field is dumped: inline as ``int``, ``text``, ``raw``, ``iso`` or ``formatted``, else by ``marshmallow``."""
    cls = type(field)
    if "serialize" in vars(field) or "_serialize" in vars(field) or "get_value" in vars(field):
        return "marshmallow"  # an instance with its own methods: trust nothing
    if field.attribute is not None and "." in field.attribute:
        return "marshmallow"  # a dotted path into nested objects
    if cls is fields.Integer:
        return "formatted" if field.as_string else "int"
    if cls is fields.String:
        return "text"
    if cls is fields.Boolean:
        return "raw"  # marshmallow dumps a Boolean's value as it is
    if cls in _DATETIME_FIELDS:
        fmt = field.format or cls.DEFAULT_FORMAT
        if fmt in _ISO_FORMATS and cls.SERIALIZATION_FUNCS.get(fmt) is dt.datetime.isoformat:
            return "iso"
        return "formatted"
    return "marshmallow"


def _plan(schema: Schema):
    if _whole_schema_only(schema):
        return None
    plan = []
    for name, field in schema.dump_fields.items():
        key = field.data_key if field.data_key is not None else name
        plan.append((key, name, _kind(field), field))
    if len({key for key, *_ in plan}) != len(plan):
        return None  # marshmallow refuses such schemas; should one get here, let it dump them
    return plan


def _compile(plan, schema: Schema, keys: tuple[str, ...] | None = None,
             stored: Mapping[str, StoredText] | None = None):
    """One function ``row -> dict`` with every field's formatting written out, in the schema's order.

    Rows are mappings; with ``keys``, sequences in that order (and ``stored`` as in
    ``CompiledDump.sequences``; None when such rows cannot be dumped here).
    Only indexes (``_f3``, ``row[7]``) and ``repr`` of strings go into the source; fields, keys and
    names are passed in the namespace, so no name from a plugin is ever read as code.
    """
    ns = {"_dt": dt.datetime, "_iso": dt.datetime.isoformat, "_missing": missing, "_get": schema.get_attribute}
    position = {k: i for i, k in enumerate(keys)} if keys is not None else None
    stored = stored or {}
    lines, entries, optional = [], [], []
    for i, (key, name, kind, field) in enumerate(plan):
        ns[f"_f{i}"], ns[f"_s{i}"], ns[f"_n{i}"] = field, field._serialize, name
        ns[f"_k{i}"] = key
        ns[f"_a{i}"] = attribute = field.attribute if field.attribute is not None else name
        v, slow = f"v{i}", f"_s{i}(v{i}, _n{i}, row)"
        if kind == "marshmallow":
            if position is not None:
                return None  # marshmallow looks values up by name
            lines.append(f"    {v} = _f{i}.serialize(_n{i}, row, accessor=_get)")
            entries.append(f"_k{i}: {v}")
            optional.append(i)
            continue
        if position is None:
            lines.append(f"    {v} = row[_a{i}]")
        elif attribute not in position:
            return None
        else:
            lines.append(f"    {v} = row[{position[attribute]:d}]")
        if attribute in stored:
            if kind != "iso":
                return None
            ns[f"_t{i}"] = stored[attribute].isoformat
            entries.append(f"_k{i}: _t{i}({v})")
            continue
        if kind == "int":
            expr = f"{v} if {v}.__class__ is int or {v} is None else {slow}"
        elif kind == "text":
            expr = f"{v} if {v}.__class__ is str or {v} is None else {slow}"
        elif kind == "raw":
            expr = v
        elif kind == "iso":
            expr = f"_iso({v}) if {v}.__class__ is _dt else {v} if {v} is None else {slow}"
        else:  # "formatted" (Integer as_string, other date formats): the field formats every value
            expr = f"{v} if {v} is None else {slow}"
        entries.append(f"_k{i}: {expr}")
    body = ["def dump_one(row):", *lines, "    out = {" + ", ".join(entries) + "}"]
    for i in optional:  # marshmallow leaves out a key whose field dumps nothing
        body.append(f"    if v{i} is _missing:\n        del out[_k{i}]")
    body.append("    return out")
    exec(compile("\n".join(body), f"<dump {type(schema).__name__}>", "exec"), ns)  # noqa: S102
    return ns["dump_one"]


class Serializer:
    def __init__(self, chat_schema, message_schema, chat_fields, message_fields):
        self.chat_schema, self.message_schema = chat_schema, message_schema
        self._chat_dump = CompiledDump(chat_schema(many=True))
        self._message_dump = CompiledDump(message_schema(many=True))
        self._chat_fields = chat_fields
        self._message_fields = message_fields
        self._stored_columns: dict[tuple, dict[str, StoredText]] = {}

    def select(self, entity: str, table: sa.Table, stored: StoredText | None = None) -> sa.Select:
        """``SELECT table.*`` plus the joinable plugin fields of ``entity``, labelled with their names.

        Rows read with it already carry those fields, so ``chats``/``messages`` skip their ``load``.
        ``stored``: the table's ``UTCDateTime`` columns are read as their stored text, which
        :meth:`page` formats with it (see :meth:`stored_columns`)."""
        field_sets = self._chat_fields if entity == "chat" else self._message_fields
        source, columns = table, []
        for fs in field_sets:
            if fs.columns is not None:
                source = source.outerjoin(fs.table, fs.key == table.c.id)
                columns.extend(column.label(name) for name, column in fs.columns.items())
        as_text = self.stored_columns(table, stored)
        own = [sa.type_coerce(c, sa.String()).label(c.name) if c.name in as_text else c for c in table.c]
        return sa.select(*own, *columns).select_from(source)

    def stored_columns(self, table: sa.Table, stored: StoredText | None) -> dict[str, StoredText]:
        """The columns :meth:`select` reads as stored text when given ``stored`` (worked out once per table)."""
        if stored is None:
            return {}
        found = self._stored_columns.get((table, stored))
        if found is None:
            found = self._stored_columns[(table, stored)] = {
                c.name: stored for c in table.c if isinstance(c.type, UTCDateTime)}
        return found

    def page(self, entity: str, conn, keys: tuple[str, ...], rows, stored: Mapping[str, StoredText]) -> list[dict]:
        """Rows of :meth:`select` as fetched (sequences in the order of ``keys``), as the API serves them."""
        dump, field_sets = ((self._chat_dump, self._chat_fields) if entity == "chat"
                            else (self._message_dump, self._message_fields))
        if not [fs for fs in field_sets if fs.fields and next(iter(fs.fields)) not in keys]:
            items = dump.sequences(keys, rows, stored)
            if items is not None:
                return items
        dicts = []
        for row in rows:
            item = dict(zip(keys, row))
            for name, how in stored.items():
                item[name] = how.value(item[name])
            dicts.append(item)
        return self._dump(conn, dicts, dump, field_sets)

    def chats(self, conn, rows) -> list[dict]:
        return self._dump(conn, rows, self._chat_dump, self._chat_fields)

    def messages(self, conn, rows) -> list[dict]:
        return self._dump(conn, rows, self._message_dump, self._message_fields)

    @staticmethod
    def _dump(conn, rows, dump, field_sets) -> list[dict]:
        rows = list(rows)
        if not rows:
            return []
        first = rows[0]
        to_load = [fs for fs in field_sets if fs.fields and next(iter(fs.fields)) not in first]
        if not to_load:  # every plugin field came with the rows (``select``): dump them as they are
            return dump(rows)
        items = [r.copy() if r.__class__ is dict else dict(r) for r in rows]  # never change the caller's rows
        ids = [item["id"] for item in items]
        for fs in to_load:
            names = tuple(fs.fields)
            extra = fs.load(conn, ids) or {}
            for item in items:
                values = extra.get(item["id"])
                if values:
                    for name in names:
                        item[name] = values.get(name)
                else:
                    for name in names:
                        item[name] = None
        return dump(items)

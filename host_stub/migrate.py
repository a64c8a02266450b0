"""``helpdesk-stub db upgrade``: apply the host's migrations and every enabled plugin's branch.

The host's branch is upgraded first, then every head: a plugin's revisions may rely on every host
table, and a plugin's branch needs no ``depends_on`` naming this host's revision ids (so each
branch keeps its own row in ``alembic_version``).

All branches share one ``alembic_version`` table. A plugin that was disabled or uninstalled
leaves its revision there, which Alembic could not resolve; its rows are set aside for the
upgrade and put back in the same transaction, so its tables and data stay untouched and the
upgrade keeps working (enabling the plugin again resumes its branch).

After the upgrade the live schema is compared with the models (host and enabled plugins): a
database whose revision says "at head" but whose tables differ (a migration edited after it ran,
a hand-made change) is refused with every difference named, instead of failing requests later.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from host_stub.errors import StartupError
from host_stub.schema import assemble_metadata

log = logging.getLogger(__name__)
HOST_VERSIONS = Path(__file__).parent / "migrations" / "versions"
HOST_BASE_REVISION = "0001_host"


def alembic_config(pm) -> AlembicConfig:
    metadata, plugin_dirs = assemble_metadata(pm)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join([str(HOST_VERSIONS), *plugin_dirs]))
    cfg.attributes["target_metadata"] = metadata
    return cfg


def upgrade(engine: sa.Engine, pm) -> list[str]:
    """Bring the database to every head; returns the heads now applied."""
    cfg = alembic_config(pm)
    known = {rev.revision for rev in ScriptDirectory.from_config(cfg).walk_revisions()}
    with engine.begin() as conn:
        stashed = _stash_unknown_heads(conn, known)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "host@head")
        command.upgrade(cfg, "heads")
        if stashed:
            conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                         [{"v": v} for v in stashed])
        heads = [r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))]
    check_schema(engine, pm)
    return sorted(heads)


def check_schema(engine: sa.Engine, pm, *, migrated: bool = True) -> None:
    """Raise :class:`StartupError` naming every way the live schema differs from the models.

    ``migrated``: the migrations were just applied, so a difference is damage, not a missed upgrade
    (``serve --no-migrate`` checks with ``migrated=False``: there the usual cause is a deploy that
    skipped ``db upgrade``)."""
    problems = schema_differences(engine, pm)
    if not problems:
        return
    if migrated:
        raise StartupError(
            "the database schema does not match this version of the helpdesk (HELPDESK_DATABASE_URL "
            "is at the latest migration, yet " + "; ".join(problems) + "). Restore the backup taken "
            "before the upgrade, or bring the schema in line, then run `helpdesk-stub db upgrade` again")
    raise StartupError(
        "the database schema does not match this version of the helpdesk (" + "; ".join(problems) + "). "
        "Run `helpdesk-stub db upgrade` first, or start `serve` without --no-migrate")


def schema_differences(engine: sa.Engine, pm) -> list[str]:
    """The differences that break the helpdesk, worded for an operator; [] when the schema fits.

    One reflection of the helpdesk's own tables (tables of disabled plugins and anything else in
    the database are not looked at). What the database has beyond the models (an index or a
    nullable column an operator added) is harmless and not reported; a changed index or foreign
    key shows as the declared one missing. Partial-index conditions are compared here (Alembic
    does not compare them); server defaults are not."""
    metadata, _ = assemble_metadata(pm)
    ours = set(metadata.tables)

    def include_name(name, type_, parent_names):
        return name in ours if type_ == "table" else True

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name})
        diffs = compare_metadata(context, metadata)
        conditions = _partial_index_differences(conn, metadata)
    problems = []
    for diff in diffs:
        for item in (diff if isinstance(diff, list) else [diff]):
            problem = _describe(item)
            if problem:
                problems.append(problem)
    return problems + conditions


def _partial_index_differences(conn, metadata) -> list[str]:
    """Every declared partial index whose condition the database's index does not have.

    A partial index with another condition still "exists" for Alembic, yet a query stating the
    declared condition cannot use it (the outbox's due rows, say, would be read by a full scan)
    and a unique one may refuse rows it should allow. An index missing altogether is reported by
    Alembic already, so it is skipped here."""
    dialect = conn.dialect.name
    problems = []
    for table in metadata.tables.values():
        for index in table.indexes:
            declared = index.dialect_options[dialect].get("where") if dialect in ("sqlite", "postgresql") else None
            if declared is None:
                continue
            found, in_database = _index_condition(conn, dialect, index.name)
            if not found:
                continue
            declared_text = str(declared.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
            if in_database is None or _normal_condition(in_database) != _normal_condition(declared_text):
                problems.append(f"index {index.name} on {table.name} has the condition "
                                f"{in_database or 'none'!r} in the database, the models say {declared_text!r}")
    return problems


def _index_condition(conn, dialect: str, name: str) -> tuple[bool, str | None]:
    """(whether the index exists, its WHERE condition as the database states it, or None)."""
    if dialect == "sqlite":
        sql = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :n"),
                           {"n": name}).scalar()
        if sql is None:
            return False, None
        where = list(re.finditer(r"\sWHERE\s", sql, re.IGNORECASE))
        return True, (sql[where[-1].end():] if where else None)
    row = conn.execute(sa.text("SELECT pg_get_expr(i.indpred, i.indrelid) FROM pg_index i "
                               "JOIN pg_class c ON c.oid = i.indexrelid "
                               "WHERE c.relname = :n AND pg_catalog.pg_table_is_visible(c.oid)"), {"n": name}).first()
    return (row is not None), (row[0] if row is not None else None)


_CAST = re.compile(r"::\s*(?:character varying|[a-z_]+)(?:\(\d+\))?")


def _normal_condition(text: str) -> str:
    """A condition as PostgreSQL and SQLite both state it: no casts, parentheses, quotes or spaces,
    in lower case (PostgreSQL prints ``state = 'pending'`` as ``((state)::text = 'pending'::text)``)."""
    text = _CAST.sub("", text.lower())
    return re.sub(r'[\s()"]', "", text)


def _describe(diff) -> str | None:
    kind = diff[0]
    if kind == "add_table":
        return f"table {diff[1].name} is missing"
    if kind == "add_column":
        return f"column {diff[2]}.{diff[3].name} is missing"
    if kind == "add_index":
        index = diff[1]
        columns = ", ".join(getattr(c, "name", str(c)) for c in index.expressions)
        return f"index {index.name} on {index.table.name} ({columns}) is missing or differs"
    if kind == "add_constraint":
        constraint = diff[1]
        columns = ", ".join(c.name for c in constraint.columns)
        return f"unique constraint {constraint.name} on {constraint.table.name} ({columns}) is missing"
    if kind == "add_fk":
        fk = diff[1]
        columns = ", ".join(c.name for c in fk.columns)
        return (f"foreign key {fk.table.name} ({columns}) -> {fk.referred_table.name} "
                f"(ondelete {fk.ondelete or 'none'}) is missing or differs")
    if kind == "remove_column":
        column = diff[3]
        if column.nullable or column.server_default is not None:
            return None  # an extra column the helpdesk never writes to is harmless
        return f"column {diff[2]}.{column.name} is not in the models and is NOT NULL without a default"
    if kind == "modify_nullable":
        _, _, table, column, _, in_database, in_models = diff
        return (f"column {table}.{column} is {'nullable' if in_database else 'NOT NULL'} in the database, "
                f"{'nullable' if in_models else 'NOT NULL'} in the models")
    if kind == "modify_type":
        _, _, table, column, _, in_database, in_models = diff
        return f"column {table}.{column} has type {in_database}, the models say {in_models}"
    return None  # extra tables, indexes and constraints; comments; defaults


def _stash_unknown_heads(conn, known: set[str]) -> list[str]:
    if not sa.inspect(conn).has_table("alembic_version"):
        return []
    rows = [r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))]
    unknown = [v for v in rows if v not in known]
    for version in unknown:
        log.warning("migration %s belongs to a plugin that is not enabled; its tables are left as they are",
                    version)
        conn.execute(sa.text("DELETE FROM alembic_version WHERE version_num = :v"), {"v": version})
    return unknown

"""``helpdesk-stub db upgrade``: apply the host's migrations and every enabled plugin's branch.

The host's branch is upgraded first, then every head: a plugin's revisions may rely on every host
table, and a plugin's branch needs no ``depends_on`` naming this host's revision ids (so each
branch keeps its own row in ``alembic_version``).

All branches share one ``alembic_version`` table. A plugin that was disabled or uninstalled
leaves its revision there, which Alembic could not resolve; its rows are set aside for the
upgrade and put back in the same transaction, so its tables and data stay untouched and the
upgrade keeps working (enabling the plugin again resumes its branch).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory

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
    return sorted(heads)


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

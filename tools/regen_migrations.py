"""Regenerate the initial migrations (host and plugin) from the models.

Run while the schema is still pre-release: ``.venv/bin/python tools/regen_migrations.py``.
Once a release ships, add new revisions instead (``--head=wazzup@head``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from host_stub.migrate import HOST_BASE_REVISION, HOST_VERSIONS, alembic_config
from host_stub.plugins import get_plugin_manager

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_VERSIONS = ROOT / "wazzup_plugin" / "migrations" / "versions"


def main() -> None:
    for path in [*HOST_VERSIONS.glob("0001_*.py"), *PLUGIN_VERSIONS.glob("0001_*.py")]:
        path.unlink()
    pm = get_plugin_manager(load_entrypoints=False, extra_plugins=[__import__("wazzup_plugin.hooks").hooks])
    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{tmp}/regen.sqlite3")
        cfg = alembic_config(pm)
        cfg.attributes["plugin_prefixes"] = ("wazzup_",)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            cfg.attributes["include_prefix"] = ""
            command.revision(cfg, "host initial", autogenerate=True, rev_id=HOST_BASE_REVISION,
                             branch_label="host", version_path=str(HOST_VERSIONS), head="base")
            command.upgrade(cfg, "host@head")
            cfg.attributes["include_prefix"] = "wazzup_"
            # No depends_on on the host's revision: the plugin's branch stays independent, so the
            # host's own row survives in alembic_version while the plugin is disabled, and the
            # plugin does not name one host's revision ids. `db upgrade` applies the host first.
            command.revision(cfg, "wazzup initial", autogenerate=True, rev_id="0001_wazzup",
                             branch_label="wazzup", version_path=str(PLUGIN_VERSIONS), head="base")
    for path in [*HOST_VERSIONS.glob("0001_*.py"), *PLUGIN_VERSIONS.glob("0001_*.py")]:
        print("wrote", path.relative_to(ROOT))


if __name__ == "__main__":
    main()

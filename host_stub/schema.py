"""The database schema of a host with its plugins: host tables plus each enabled plugin's tables.

Each call builds a fresh ``MetaData`` (a copy of the host's tables, then the plugins' own), so a
plugin disabled in one app never leaks its tables into another built in the same process.
"""

from __future__ import annotations

import sqlalchemy as sa

from host_stub.models import Base


def assemble_metadata(pm) -> tuple[sa.MetaData, list[str]]:
    """Host tables plus every enabled plugin's tables; returns (metadata, plugin version dirs)."""
    metadata = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(metadata)
    dirs = [d for d in pm.hook.register_schema(metadata=metadata) if d]
    return metadata, dirs


def create_all(engine, pm) -> None:
    """Create every table directly (tests and benchmarks; real databases use ``db upgrade``)."""
    metadata, _ = assemble_metadata(pm)
    metadata.create_all(engine)

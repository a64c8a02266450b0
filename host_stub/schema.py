"""The database schema of a host with its plugins: host tables plus each plugin's tables."""

from __future__ import annotations

from host_stub.models import Base


def assemble_metadata(pm):
    """Add every enabled plugin's tables to the host's metadata; returns (metadata, version dirs)."""
    metadata = Base.metadata
    dirs = [d for d in pm.hook.register_schema(metadata=metadata) if d]
    return metadata, dirs


def create_all(engine, pm) -> None:
    """Create every table directly (tests and benchmarks; real databases use ``db upgrade``)."""
    metadata, _ = assemble_metadata(pm)
    metadata.create_all(engine)

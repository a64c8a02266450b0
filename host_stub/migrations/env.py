"""Alembic environment: the host's versions plus every enabled plugin's labelled branch."""

from alembic import context

config = context.config
connection = config.attributes["connection"]
target_metadata = config.attributes["target_metadata"]
include_prefix = config.attributes.get("include_prefix")


def include_object(obj, name, type_, reflected, compare_to):
    if type_ == "table" and include_prefix is not None:
        return name.startswith(include_prefix) if include_prefix else not name.startswith(
            tuple(config.attributes.get("plugin_prefixes", ())))
    return True


def render_item(type_, obj, autogen_context):
    # Migrations must not import application code: render our TypeDecorators as their base type.
    if type_ == "type" and hasattr(obj, "impl") and obj.__class__.__name__ == "UTCDateTime":
        return f"sa.{obj.impl!r}"
    return False


context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                  include_object=include_object, compare_type=True, render_item=render_item)
with context.begin_transaction():
    context.run_migrations()

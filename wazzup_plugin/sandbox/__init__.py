"""A local emulator of the Wazzup24 API v3, for development, demos and tests."""


def add_commands(group) -> None:
    """CLI commands of the sandbox (sandbox, demo)."""

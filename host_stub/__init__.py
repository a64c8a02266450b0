"""The reference helpdesk host: a small Falcon helpdesk that defines the plugin contract."""

from host_stub.errors import StartupError
from host_stub.hookspecs import CONTRACT_VERSION, hookimpl

__all__ = ["CONTRACT_VERSION", "StartupError", "hookimpl"]
__version__ = "0.1.0"

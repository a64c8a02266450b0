"""The WSGI entry for gunicorn: ``gunicorn 'host_stub.wsgi:create_wsgi_app()'``."""

from __future__ import annotations


def create_wsgi_app():
    from host_stub.app import create_app
    from host_stub.config import Config
    from host_stub.logging_setup import configure_logging
    from host_stub.plugins import get_plugin_manager

    config = Config.from_env()
    configure_logging(config)
    return create_app(config, get_plugin_manager(enabled=config.plugins))

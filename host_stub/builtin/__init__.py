"""Built-in plugins of the host, registered through the same hooks as external ones."""

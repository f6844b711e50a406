"""The HTTP app around the engine: app factory, routes, upload, admission, the one error
table, the web page. Imported by the CLI and the Ray Serve ingress only."""

from .app import create_app, serve

__all__ = ["create_app", "serve"]

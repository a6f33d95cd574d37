"""ASGI entry point for uvicorn: ``omnicloud.asgi:app``."""

from omnicloud.app import create_app

app = create_app()

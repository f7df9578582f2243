"""WSGI entry point: ``cachedapp.wsgi:app`` (config from CACHEDAPP_CONFIG + env)."""

from cachedapp.web import create_app

app = create_app()

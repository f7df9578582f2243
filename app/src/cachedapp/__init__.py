"""cachedapp: a Flask app that serves a slow PostgreSQL query through Redis."""

__version__ = "1.0.0"

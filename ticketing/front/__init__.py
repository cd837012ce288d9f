"""The web front: one ASGI application on one origin (see ``asgi``)."""

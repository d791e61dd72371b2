"""Gunicorn settings, read from the working directory (the Procfile's `web` line starts there)."""


def post_worker_init(worker):
    """Each web worker loads the production models as soon as it has imported the application."""
    from backend.serving.loading import preload_default_models

    preload_default_models()

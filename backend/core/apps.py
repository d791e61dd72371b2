from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Cross-cutting pieces: health, error bodies, the demo admin, start-up checks."""

    name = "backend.core"
    label = "core"

    def ready(self) -> None:
        from backend.core import checks  # noqa: F401  (registers the system checks)

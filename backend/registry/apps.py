from django.apps import AppConfig


class RegistryConfig(AppConfig):
    """Registered models, their versions and the history of what was in production."""

    name = "backend.registry"
    label = "registry"

    def ready(self) -> None:
        from backend.registry import checks, receivers  # noqa: F401  (registers checks, connects receivers)

from django.apps import AppConfig


class ServingConfig(AppConfig):
    """The production models each web process holds: loading, hot swap, the serving generation, the
    inference slots and anonymous throttle of the prediction endpoints, model info."""

    name = "backend.serving"
    label = "serving"

    def ready(self) -> None:
        from backend.serving import receivers  # noqa: F401  (connects the receivers)

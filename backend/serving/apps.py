from django.apps import AppConfig


class ServingConfig(AppConfig):
    """The production models each web process holds: loading, hot swap, the serving generation, the
    inference slots and anonymous throttle of the prediction endpoints, model info."""

    name = "backend.serving"
    label = "serving"

    def ready(self) -> None:
        from django.conf import settings

        from backend.serving import receivers  # noqa: F401  (connects the receivers)
        from mlops.inference.runtime import use_openvino_cache

        use_openvino_cache(settings.SERVING_OPENVINO_CACHE_DIR)

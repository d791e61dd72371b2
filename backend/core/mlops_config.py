"""The ML core's configuration, built once from Django settings."""

from functools import cache
from pathlib import Path

from django.conf import settings

from mlops.config import MlopsConfig


@cache
def mlops_config() -> MlopsConfig:
    config = MlopsConfig(
        var_dir=Path(settings.VAR_DIR),
        tracking_uri=settings.MLFLOW_TRACKING_URI,
        registry_uri=settings.MLFLOW_REGISTRY_URI,
        artifact_root=settings.MLFLOW_ARTIFACT_ROOT,
        experiment=settings.MLFLOW_EXPERIMENT,
        s3_endpoint_url=settings.S3_ENDPOINT_URL,
        max_image_pixels=settings.MAX_IMAGE_PIXELS,
        max_image_side=settings.MAX_IMAGE_SIDE,
    )
    return config

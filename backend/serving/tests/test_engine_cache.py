"""Every process that loads models (web, workers) keeps OpenVINO's compiled models where the settings say."""

from pathlib import Path

from django.conf import settings

from mlops.inference import runtime


def test_the_app_points_openvino_at_the_configured_cache():
    assert settings.SERVING_OPENVINO_CACHE_DIR
    assert runtime._openvino_cache_dir == Path(settings.SERVING_OPENVINO_CACHE_DIR)
    assert Path(settings.SERVING_OPENVINO_CACHE_DIR).is_relative_to(settings.VAR_DIR)

import pytest

from backend.detection.tests.support import register_and_promote, train_tiny_detector


@pytest.fixture(autouse=True)
def generous_anon_rate(settings):
    """Tests post many anonymous requests; the throttle has its own test with a tight rate."""
    settings.API_ANON_RATE = "100000/min"


@pytest.fixture(scope="session")
def trained_detector(tmp_path_factory):
    """A tiny YOLO trained on synthetic shapes (finds boxes), with held-out images of shapes."""
    return train_tiny_detector(tmp_path_factory.mktemp("trained-detector"))


@pytest.fixture
def serve_detector(model_files, unique_name, settings):
    """Register and promote detector number `index` (0-2) as this test's default detection model."""
    settings.DEFAULT_DETECTION_MODEL = unique_name

    def serve(index: int = 0, name: str | None = None):
        return register_and_promote(name or unique_name, "detection", model_files["detectors"][index])

    return serve


@pytest.fixture
def serve_trained(trained_detector, unique_name, settings):
    settings.DEFAULT_DETECTION_MODEL = unique_name

    def serve(name: str | None = None):
        return register_and_promote(name or unique_name, "detection", trained_detector.files, metrics={"mAP50": 0.5})

    return serve

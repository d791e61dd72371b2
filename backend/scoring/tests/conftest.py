import pytest


@pytest.fixture(autouse=True)
def generous_anon_rate(settings):
    settings.API_ANON_RATE = "100000/min"


@pytest.fixture
def serve_tabular(model_files, unique_name, settings):
    """Register and promote tabular model number `index` (0-1) as this test's default tabular model."""
    from backend.detection.tests.support import register_and_promote

    settings.DEFAULT_TABULAR_MODEL = unique_name

    def serve(index: int = 0):
        return register_and_promote(unique_name, "tabular", model_files["tabular"][index], metrics={"accuracy": 0.95})

    return serve

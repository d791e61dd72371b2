import pytest

from backend.registry.services import register_from_files


@pytest.fixture
def register_detector(model_files, unique_name):
    """Register detector number `index` (0-2) under this test's model name."""

    def register(index: int, name: str | None = None, **metrics):
        files = model_files["detectors"][index]
        return register_from_files(
            name or unique_name, "detection", files.files(), metrics=metrics or {"mAP50": 0.5 + index / 10},
            metadata=files.metadata,
        )  # fmt: skip

    return register


@pytest.fixture
def register_tabular(model_files, unique_name):
    def register(index: int, name: str | None = None, **metrics):
        files = model_files["tabular"][index]
        return register_from_files(
            name or unique_name, "tabular", files.files(), metrics=metrics or {"accuracy": 0.9 + index / 100},
            metadata=files.metadata,
        )  # fmt: skip

    return register

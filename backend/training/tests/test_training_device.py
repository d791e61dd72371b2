"""TRAINING_DEVICE: the device a trainer host gives YOLO jobs that do not name their own."""

from backend.training.models import TrainingJob
from backend.training.runner import with_training_device
from mlops.training.params import DetectorParams

Kind = TrainingJob.Kind


def test_a_trainer_hosts_device_reaches_ultralytics_for_yolo_jobs(settings):
    settings.TRAINING_DEVICE = "0"
    params = with_training_device(Kind.DETECTION, {"epochs": 2})
    assert DetectorParams.from_mapping(params).ultralytics_args()["device"] == "0"
    assert with_training_device(Kind.CLASSIFICATION, {})["device"] == "0"


def test_a_jobs_own_device_wins_and_tabular_jobs_are_left_alone(settings):
    settings.TRAINING_DEVICE = "0"
    assert with_training_device(Kind.DETECTION, {"device": "cpu"})["device"] == "cpu"
    assert "device" not in with_training_device(Kind.TABULAR, {"max_depth": 3})


def test_without_a_device_the_params_file_decides(settings):
    settings.TRAINING_DEVICE = ""
    assert with_training_device(Kind.DETECTION, {"epochs": 2}) == {"epochs": 2}
    assert DetectorParams.from_mapping({}).ultralytics_args()["device"] == "cpu"

"""Drift checks on synthetic tabular and detection streams, run through the real Evidently."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from mlops.exceptions import InvalidInput
from mlops.inference.features import FEATURE_NAMES
from mlops.monitoring import evidently_adapter
from mlops.monitoring.columns import (
    DEFAULT_DRIFT_SHARE,
    DETECTION_CATEGORICAL,
    detection_reference_frame,
    detection_rows_to_frame,
    tabular_reference_frame,
    tabular_rows_to_frame,
)
from mlops.monitoring.drift import ColumnDrift, DriftConfig, DriftDetector, DriftReport, DriftStatus, auto_method

logger = logging.getLogger(__name__)

FEATURES = [f"x{i}" for i in range(8)]
LABELS = ["benign", "malignant"]
CLASSES = ["circle", "square", "triangle"]
WEIGHTS = np.array([0.8, -0.5, 0.3, 0.0, 0.6, -0.2, 0.1, 0.4])
PIXEL_DESCRIPTORS = ["brightness", "contrast", "sharpness", "colourfulness"]


# -- synthetic streams --------------------------------------------------------------------------


def gaussian_features(n: int, seed: int) -> pd.DataFrame:
    """Eight correlated Gaussian features at different scales, like a real tabular dataset."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, len(FEATURES)))
    base[:, 1] += 0.6 * base[:, 0]
    base[:, 5] += 0.4 * base[:, 4]
    return pd.DataFrame(base * np.arange(1, 9) + np.arange(8) * 10.0, columns=FEATURES)


def malignancy(features: pd.DataFrame) -> np.ndarray:
    standard = (features.to_numpy() - np.arange(8) * 10.0) / np.arange(1, 9)
    return 1.0 / (1.0 + np.exp(-standard @ WEIGHTS))


def tabular_reference(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The table mlops.training.xgb saves: features, proba_<class>, prediction, target."""
    table = gaussian_features(n, seed)
    p = malignancy(table)
    table["proba_benign"], table["proba_malignant"] = 1 - p, p
    table["prediction"] = (p > 0.5).astype(int)
    table["target"] = np.random.default_rng(seed + 1).random(n) < p
    return table


def tabular_rows(n: int, seed: int, *, shifted: tuple[str, ...] = (), scale: float = 1.0, offset: float = 0.0):
    """Logged predictions as the web side reads them; `shifted` features are scaled and offset."""
    features = gaussian_features(n, seed)
    for name in shifted:
        features[name] = features[name] * scale + offset * features[name].std()
    p = malignancy(features)
    return [
        {"inputs": record, "probabilities": {"benign": 1 - prob, "malignant": prob}}
        for record, prob in zip(features.to_dict("records"), p, strict=True)
    ]


def detection_rows(n: int, seed: int, *, darkness: float = 1.0, object_scale: float = 1.0) -> list[dict]:
    """Logged detections: photos at three sizes and ~2 boxes each.

    `darkness` scales pixel values, which scales brightness, contrast and colourfulness by the same
    factor and sharpness (a variance) by its square; `object_scale` scales every box's sides.
    """
    rng = np.random.default_rng(seed)
    sizes = [(640, 480), (1280, 720), (800, 600)]
    rows = []
    for _ in range(n):
        width, height = sizes[rng.choice(3, p=[0.6, 0.3, 0.1])]
        features = {
            "width": float(width),
            "height": float(height),
            "brightness": float(np.clip(rng.normal(120, 25), 5, 250)) * darkness,
            "contrast": float(np.clip(rng.normal(55, 12), 2, 120)) * darkness,
            "sharpness": float(rng.lognormal(5, 0.5)) * darkness**2,
            "colourfulness": float(np.clip(rng.normal(40, 15), 0, 150)) * darkness,
        }
        rows.append({"features": features, "boxes": [_box(rng, object_scale) for _ in range(rng.poisson(2.0))]})
    return rows


def _box(rng, scale: float) -> dict:
    class_id = int(rng.choice(3, p=[0.5, 0.3, 0.2]))
    w, h = (rng.uniform(0.05, 0.3, size=2) * scale).clip(0.01, 1.0)
    x1, y1 = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
    confidence = float(rng.beta(8, 2))
    return {
        "xyxyn": [x1, y1, x1 + w, y1 + h],
        "class_id": class_id,
        "class_name": CLASSES[class_id],
        "confidence": confidence,
    }


def detection_reference(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """The table mlops.training.yolo.save_reference writes, for `n` validation images."""
    rows = detection_rows(n, seed)
    saved = detection_rows_to_frame(rows, CLASSES).drop(columns=["aspect", "main_class"])
    for index, name in enumerate(CLASSES):
        saved[f"count_{name}"] = [sum(box["class_id"] == index for box in row["boxes"]) for row in rows]
    saved.insert(0, "image", [f"val_{i:04d}.jpg" for i in range(n)])
    return saved.astype({"n_boxes": int})


def detection_drift_detector(reference: pd.DataFrame) -> DriftDetector:
    """A detector's drift check as production makes it: the class mix categorical, a detector's share."""
    config = DriftConfig(drift_share=DEFAULT_DRIFT_SHARE["detection"])
    return DriftDetector(reference, categorical=DETECTION_CATEGORICAL, config=config)


@pytest.fixture(scope="module")
def tabular_detector() -> DriftDetector:
    return DriftDetector(tabular_reference_frame(tabular_reference()))


@pytest.fixture(scope="module")
def detection_detector() -> DriftDetector:
    return detection_drift_detector(detection_reference_frame(detection_reference()))


def detections(n: int, seed: int, **shift) -> pd.DataFrame:
    return detection_rows_to_frame(detection_rows(n, seed, **shift), CLASSES)


# -- tabular ------------------------------------------------------------------------------------


def test_shifted_tabular_features_are_flagged(tabular_detector):
    shifted = ("x0", "x1", "x2", "x4", "x6")
    current = tabular_rows_to_frame(tabular_rows(500, 7, shifted=shifted, scale=1.5, offset=1.0), FEATURES, LABELS)
    report = tabular_detector.check(current, html=False)
    assert report.status == DriftStatus.DRIFT and report.dataset_drift
    assert set(shifted) <= set(report.drifted_columns)
    assert report.drifted_share >= 0.5
    assert report.message.startswith(f"{len(report.drifted_columns)} of 10 columns drifted (")
    assert [column.column for column in report.columns] == [*FEATURES, "proba_benign", "proba_malignant"]


def test_an_unshifted_tabular_window_is_not_flagged(tabular_detector):
    current = tabular_rows_to_frame(tabular_rows(500, 8), FEATURES, LABELS)
    report = tabular_detector.check(current, html=False)
    assert report.status == DriftStatus.OK and not report.dataset_drift
    assert len(report.drifted_columns) <= 1
    assert (report.reference_size, report.current_size) == (2000, 500)


def test_false_alarms_stay_rare_for_windows_of_every_size(record_property):
    """20 windows of the reference distribution, 100 to 3000 rows, against a 5000-row reference.

    Evidently's own choice would compare the small windows with normed Wasserstein (its pick above
    1000 reference rows), which flags most unshifted columns of a 100-row window.
    """
    detector = DriftDetector(tabular_reference_frame(tabular_reference(5000)))
    sizes = [100, 300, 1000, 3000] * 5
    reports = [
        detector.check(tabular_rows_to_frame(tabular_rows(size, 100 + seed), FEATURES, LABELS), html=False)
        for seed, size in enumerate(sizes)
    ]
    flagged = sum(report.status == DriftStatus.DRIFT for report in reports)
    drifted_columns = sum(len(report.drifted_columns) for report in reports)
    record_property("false_alarms", flagged)
    record_property("falsely_drifted_columns", drifted_columns)
    logger.info("false alarms: %s of 20 windows, %s of 200 columns", flagged, drifted_columns)
    assert flagged <= 1, f"{flagged} of 20 unshifted windows flagged ({drifted_columns} of 200 columns drifted)"


def test_tests_follow_the_smaller_sample(tabular_detector):
    assert set(tabular_detector.methods(100).values()) == {"ks"}
    assert set(tabular_detector.methods(1500).values()) == {"wasserstein"}
    assert auto_method("numerical", distinct=4, size=5000) == "jensenshannon"
    assert auto_method("numerical", distinct=1, size=300) == "ks"
    assert auto_method("categorical", distinct=3, size=300) == "chisquare"


# -- detection descriptors ----------------------------------------------------------------------


def test_a_darker_stream_is_flagged(detection_detector):
    report = detection_detector.check(detections(300, 11, darkness=0.6), html=False)
    drifted = report.drifted_columns
    assert set(PIXEL_DESCRIPTORS) <= set(drifted) and len(drifted) <= len(PIXEL_DESCRIPTORS) + 1
    assert report.message == f"{len(drifted)} of 12 columns drifted ({', '.join(drifted)})"
    # Four of twelve columns: a detector's share (a quarter) flags it; Evidently's half would not.
    assert report.status == DriftStatus.DRIFT
    lenient = DriftDetector(detection_detector.reference, categorical=DETECTION_CATEGORICAL)
    assert lenient.check(detections(300, 11, darkness=0.6), html=False).status == DriftStatus.OK


def test_objects_at_another_size_are_flagged(detection_detector):
    for scale, seed in ((0.5, 12), (2.0, 13)):
        report = detection_detector.check(detections(300, seed, object_scale=scale), html=False)
        assert "box_area_share" in report.drifted_columns and "box_area_share" in report.message
        assert len(report.drifted_columns) <= 2  # K-S at 0.05 on 12 columns: one may drift by chance


def test_an_unshifted_detection_stream_is_not_flagged(detection_detector):
    report = detection_detector.check(detections(300, 14), html=False)
    assert report.status == DriftStatus.OK
    assert len(report.drifted_columns) <= 1
    # Counts are numerical with few values: tested without chi-square's blow-up on unseen values.
    methods = {column.column: column.method for column in report.columns}
    assert methods["n_boxes"] == "ks" and methods["main_class"] == "chisquare"


def test_false_alarms_stay_rare_for_detectors_at_their_share(detection_detector, record_property):
    """20 unshifted detection windows against the reference, at a detector's default share (a quarter)."""
    reports = [detection_detector.check(detections(300, 200 + seed), html=False) for seed in range(20)]
    flagged = sum(report.status == DriftStatus.DRIFT for report in reports)
    record_property("false_alarms", flagged)
    logger.info("detector false alarms: %s of 20 windows", flagged)
    assert flagged <= 1, f"{flagged} of 20 unshifted detection windows flagged"


def test_a_busy_window_with_more_boxes_than_any_reference_image_is_no_false_alarm():
    reference = detection_reference_frame(detection_reference(600))
    detector = detection_drift_detector(reference)
    current = detections(300, 15)
    top = current["n_boxes"].idxmax()
    current.loc[top, "n_boxes"] = reference["n_boxes"].max() + 3  # never seen in training
    report = detector.check(current, html=False)
    assert "n_boxes" not in report.drifted_columns


def test_an_older_reference_compares_the_columns_it_has(detection_detector):
    old = detection_reference().drop(columns=["max_confidence", "box_area_share"])
    detector = detection_drift_detector(detection_reference_frame(old))
    report = detector.check(detections(200, 16), html=False)
    assert len(report.columns) == 10
    assert "box_area_share" not in {column.column for column in report.columns}


# -- report, settings, size ---------------------------------------------------------------------


def test_too_few_predictions_give_not_enough_data_without_running_evidently(tabular_detector, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Evidently should not run")

    monkeypatch.setattr(evidently_adapter, "run_data_drift", refuse)
    report = tabular_detector.check(tabular_rows_to_frame(tabular_rows(42, 9), FEATURES, LABELS))
    assert report.status == DriftStatus.NOT_ENOUGH_DATA == "not_enough_data"
    assert report.message == "42 predictions, fewer than the 100 needed"
    assert (report.html, report.columns, report.current_size, report.dataset_drift) == ("", [], 42, False)


def test_the_html_report_shows_the_drifted_columns(detection_detector):
    report = detection_detector.check(detections(150, 17, darkness=0.5), html=True)
    page = report.html
    assert page.lstrip().lower().startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "brightness" in page and "Data Drift" in page
    assert "html" not in report.to_dict()


def test_the_report_is_plain_json():
    import json

    column = ColumnDrift("brightness", "numerical", "ks", float("nan"), 0.05, False)
    report = DriftReport(DriftStatus.OK, [column], 0.0, False, 10, 10, 0.1, html="<html>", message="m")
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["status"] == "ok" and data["columns"][0]["score"] is None
    expected = ["status", "columns", "drifted_share", "dataset_drift", "reference_size", "current_size", "duration_s"]
    assert set(data) == {*expected, "message"}


def test_a_large_window_is_sampled_down():
    rng = np.random.default_rng(3)
    columns = [f"c{i}" for i in range(10)]
    big = pd.DataFrame(rng.normal(size=(100_000, 10)), columns=columns)
    detector = DriftDetector(big)
    report = detector.check(pd.DataFrame(rng.normal(size=(100_000, 10)), columns=columns), html=False)
    assert report.reference_size == report.current_size == 5000
    assert report.status == DriftStatus.OK
    again = DriftDetector(big).check(big.iloc[::-1].reset_index(drop=True), html=False)
    assert again.current_size == 5000


def test_the_reference_keeps_only_usable_columns():
    reference = detection_reference(200)
    reference["model"] = "yolo11n"
    reference["captured"] = pd.Timestamp("2024-05-01")
    reference["empty"] = np.nan
    reference["parsable"] = reference["contrast"].astype(str)
    detector = DriftDetector(reference, config=DriftConfig(min_samples=50))
    assert "image" not in detector.columns and "model" not in detector.columns
    assert "captured" not in detector.columns and "empty" not in detector.columns
    assert "parsable" in detector.columns and set(FEATURE_NAMES) <= set(detector.columns)


def test_a_categorical_column_is_compared_as_categories():
    rng = np.random.default_rng(4)
    reference = pd.DataFrame({"x": rng.normal(size=400), "site": rng.choice(["a", "b", "c"], 400)})
    current = pd.DataFrame({"x": rng.normal(size=300), "site": rng.choice(["a", "b"], 300, p=[0.9, 0.1])})
    report = DriftDetector(reference, categorical=["site"]).check(current, html=False)
    site = next(column for column in report.columns if column.column == "site")
    assert (site.kind, site.method, site.drifted) == ("categorical", "chisquare", True)


def test_settings_apply_per_column():
    reference = tabular_reference_frame(tabular_reference(1000))
    config = DriftConfig.from_mapping(
        {"method": "psi", "column_methods": {"x0": "ks"}, "column_thresholds": {"x0": 0.01}, "columns": ["x0", "x1"]}
    )
    report = DriftDetector(reference, config=config).check(
        tabular_rows_to_frame(tabular_rows(300, 5), FEATURES, LABELS), html=False
    )
    assert [(c.column, c.method, c.threshold) for c in report.columns] == [("x0", "ks", 0.01), ("x1", "psi", 0.1)]


def test_a_method_that_cannot_test_the_column_is_refused():
    reference = pd.DataFrame({"site": ["a", "b"] * 100})
    with pytest.raises(InvalidInput) as error:
        DriftDetector(reference, categorical=["site"], config=DriftConfig(column_methods={"site": "ks"}))
    assert error.value.details["key"] == "column_methods.site"


def test_no_shared_column_is_an_error(tabular_detector):
    with pytest.raises(InvalidInput, match="share no column"):
        tabular_detector.check(pd.DataFrame({"other": range(200)}))


@pytest.mark.parametrize(
    ("mapping", "key"),
    [
        ({"min_sample": 10}, "min_sample"),
        ({"min_samples": "100"}, "min_samples"),
        ({"min_samples": True}, "min_samples"),
        ({"min_samples": 0}, "min_samples"),
        ({"max_rows": 50}, "max_rows"),
        ({"drift_share": 1.5}, "drift_share"),
        ({"drift_share": 0}, "drift_share"),
        ({"method": "kolmogorov"}, "method"),
        ({"threshold": 0.01}, "threshold"),
        ({"method": "ks", "threshold": -1}, "threshold"),
        ({"column_methods": ["ks"]}, "column_methods"),
        ({"column_methods": {"brightness": "nope"}}, "column_methods.brightness"),
        ({"column_thresholds": {"brightness": 0.01}}, "column_thresholds.brightness"),
        ({"columns": "brightness"}, "columns"),
        ({"columns": []}, "columns"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(mapping, key):
    with pytest.raises(InvalidInput) as error:
        DriftConfig.from_mapping(mapping)
    assert key in error.value.message and error.value.details["key"] == key
    assert error.value.status == 400


def test_settings_round_trip_through_json():
    import json

    assert DriftConfig.from_mapping(None) == DriftConfig() == DriftConfig.from_mapping({})
    config = DriftConfig.from_mapping(
        {"min_samples": 50, "method": "wasserstein", "threshold": 0.2, "drift_share": 0.3, "columns": ["a"], "seed": 3}
    )
    assert DriftConfig.from_mapping(json.loads(json.dumps(config.to_dict()))) == config
    assert config.columns == ("a",) and config.threshold == 0.2
    with pytest.raises(InvalidInput, match="must be an object"):
        DriftConfig.from_mapping([("min_samples", 5)])

"""Classification data end to end: the synthetic set, a local folder-per-class set, validation, the split."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlops.data.ingest import ingest
from mlops.data.layout import classification_samples, read_dataset_info
from mlops.data.prepare import SplitSpec, load_prepared, prepare_dataset
from mlops.data.synthetic import ClassificationSpec, ShapesSpec, generate_classification, generate_shapes
from mlops.data.validate import ValidationPolicy, validate_dataset
from mlops.exceptions import DataValidationError, InvalidInput
from mlops.training.params import load_params_file

SPEC = ClassificationSpec(per_class=12, imgsz=32, seed=3)


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return generate_classification(tmp_path_factory.mktemp("classes") / "raw", SPEC)


@pytest.fixture
def copy(raw, tmp_path) -> Path:
    target = tmp_path / "raw"
    shutil.copytree(raw, target)
    return target


def _report(dataset: Path, policy: ValidationPolicy | None = None) -> dict:
    with pytest.raises(DataValidationError) as info:
        validate_dataset(dataset, policy=policy, report_path=dataset.parent / "report.json")
    assert json.loads((dataset.parent / "report.json").read_text()) == info.value.details["report"]
    return info.value.details["report"]


def _codes(findings: list[dict]) -> set[str]:
    return {finding["code"] for finding in findings}


# -- synthetic --------------------------------------------------------------------------------


def test_the_synthetic_set_is_one_folder_per_class_and_deterministic(raw, tmp_path):
    info = read_dataset_info(raw)
    assert (info["kind"], info["names"], info["source"]) == (
        "classification",
        ["circle", "square", "triangle"],
        "synthetic:classification",
    )
    assert sorted(p.name for p in raw.iterdir() if p.is_dir()) == ["circle", "square", "triangle"]
    assert all(len(list((raw / name).glob("*.jpg"))) == 12 for name in info["names"])
    with Image.open(next((raw / "circle").glob("*.jpg"))) as image:
        assert image.size == (32, 32)

    again = generate_classification(tmp_path / "again", SPEC)
    assert _digests(again) == _digests(raw)
    other_seed = generate_classification(tmp_path / "other", ClassificationSpec(per_class=12, imgsz=32, seed=4))
    assert _digests(other_seed)["circle/circle_00000.jpg"] != _digests(raw)["circle/circle_00000.jpg"]
    plain = ClassificationSpec(per_class=2, imgsz=32, seed=3, backgrounds=["gradient"])
    assert _digests(generate_classification(tmp_path / "p1", plain)) == _digests(
        generate_classification(tmp_path / "p2", plain)
    )


def test_more_images_or_classes_keep_the_existing_ones(raw, tmp_path):
    spec = ClassificationSpec(classes=("triangle", "star", "circle", "square"), per_class=14, imgsz=32, seed=3)
    bigger = generate_classification(tmp_path / "bigger", spec)
    assert read_dataset_info(bigger)["names"] == ["circle", "square", "star", "triangle"]  # sorted, like Ultralytics
    before, after = _digests(raw), _digests(bigger)
    assert all(after[path] == digest for path, digest in before.items() if path != "dataset.json")
    assert len(list((bigger / "star").glob("*.jpg"))) == 14


def test_bad_synthetic_parameters_are_refused(tmp_path):
    bad = (
        {"classes": ["circle"]},
        {"classes": ["circle", "blob"]},
        {"per_class": 0},
        {"backgrounds": ["plaid"]},
        {"colour": "red"},
        {"rotation": 400},
        {"background_contrast": 1.5},
        {"outline": "glow"},
        {"outline_width": 0},
        {"outline_width": 17, "imgsz": 64},
    )
    for values in bad:
        with pytest.raises(InvalidInput):
            ingest("synthetic:classification", tmp_path / "x", options=values)


def test_params_yaml_draws_the_learnable_set_upright_dark_outlined_and_flat(tmp_path):
    """params.yaml's set (the one `make run` trains on): same per-image draws, easier images."""
    options = load_params_file()["data"]["classification"]["options"]
    spec = ClassificationSpec.from_mapping({**options, "per_class": 3})
    assert (spec.rotation, spec.outline, spec.background_contrast) == (0, "dark", 0.3)
    assert (spec.imgsz, spec.outline_width) == (64, 3)
    easy = generate_classification(tmp_path / "easy", spec)
    hard = generate_classification(tmp_path / "hard", ClassificationSpec(per_class=3, imgsz=64))
    assert _digests(generate_classification(tmp_path / "again", spec)) == _digests(easy)
    for name in spec.classes:
        for index in range(3):
            with Image.open(easy / name / f"{name}_{index:05d}.jpg") as image:
                pixels = np.asarray(image.convert("RGB"), dtype=float)
            with Image.open(hard / name / f"{name}_{index:05d}.jpg") as image:
                textured = np.asarray(image.convert("RGB"), dtype=float)
            corner, hard_corner = pixels[:6, :6].reshape(-1, 3), textured[:6, :6].reshape(-1, 3)
            assert corner.std(axis=0).mean() <= hard_corner.std(axis=0).mean() + 1  # flatter background
            assert (pixels.max(axis=2) < 60).sum() >= 3 * 20  # a dark outline around the shape


def test_the_synthetic_source_ingests_as_classification(tmp_path):
    result = ingest("synthetic:classification", tmp_path / "raw", options={"per_class": 2, "imgsz": 32}, kind=None)
    assert (result.kind, result.items, result.class_names) == ("classification", 6, ("circle", "square", "triangle"))
    with pytest.raises(InvalidInput) as info:
        ingest("synthetic:classification", tmp_path / "det", options={"per_class": 2}, kind="detection")
    assert info.value.code == "kind_mismatch"
    with pytest.raises(InvalidInput) as info:
        ingest("synthetic:shapes", tmp_path / "cls", options={"count": 2, "imgsz": 64}, kind="classification")
    assert info.value.code == "kind_mismatch"
    with pytest.raises(InvalidInput) as info:
        ingest("synthetic:classification", tmp_path / "y", kind="segmentation")
    assert info.value.code == "bad_kind"


# -- ingest of a local folder -----------------------------------------------------------------


@pytest.fixture
def class_folders(raw, tmp_path) -> Path:
    """A download as people publish them: split folders, then one folder per class, plus a README."""
    source = tmp_path / "download" / "animals"
    for index, image in enumerate(sorted((raw / "circle").glob("*.jpg"))[:4]):
        split = "train" if index < 3 else "valid"
        target = source / split / "cat" / f"{index}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image, target)
    for index, image in enumerate(sorted((raw / "square").glob("*.jpg"))[:3]):
        target = source / "train" / "dog" / f"{index}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image, target)
    (source / "README.md").write_text("cats and dogs")
    return tmp_path / "download"


def test_a_local_folder_per_class_set_becomes_a_classification_set(class_folders, tmp_path):
    result = ingest(f"folder:{class_folders}", tmp_path / "raw", kind="classification")

    assert (result.kind, result.items, result.class_names) == ("classification", 7, ("cat", "dog"))
    info = read_dataset_info(result.path)
    assert (info["kind"], info["names"], info["layout"]) == ("classification", ["cat", "dog"], "class_folders")
    assert sorted(p.name for p in (result.path / "cat").iterdir()) == [
        "animals__train__0.jpg",
        "animals__train__1.jpg",
        "animals__train__2.jpg",
        "animals__val__3.jpg",  # "valid" is our "val"; the source's split is kept in the name only
    ]
    samples = classification_samples(result.path)
    assert [(s.class_name, s.split) for s in samples].count(("dog", None)) == 3
    assert (result.path / "cat" / "animals__train__0.jpg").read_bytes() == (
        class_folders / "animals" / "train" / "cat" / "0.jpg"
    ).read_bytes()


def test_the_same_folder_without_a_kind_is_still_a_detection_set(class_folders, tmp_path):
    result = ingest(f"folder:{class_folders}", tmp_path / "raw")
    assert (result.kind, result.class_names) == ("detection", ("cat", "dog"))
    labels = sorted((result.path / "labels").glob("*.txt"))
    assert len(labels) == 7 and labels[0].read_text() == "0 0.5 0.5 1.0 1.0\n"


def test_split_folders_without_class_folders_are_refused(raw, tmp_path):
    source = tmp_path / "download"
    for split in ("train", "valid"):
        (source / split).mkdir(parents=True)
        shutil.copyfile(next((raw / "circle").glob("*.jpg")), source / split / "0.jpg")
    with pytest.raises(InvalidInput) as info:
        ingest(f"folder:{source}", tmp_path / "raw", kind="classification")
    assert info.value.code == "unsupported_layout" and "its own folder" in info.value.message


def test_a_yolo_layout_or_a_table_is_not_a_classification_set(tmp_path):
    yolo = generate_shapes(tmp_path / "yolo", ShapesSpec(count=2, imgsz=64))
    with pytest.raises(InvalidInput) as info:
        ingest(f"folder:{yolo}", tmp_path / "raw", kind="classification")
    assert info.value.code == "kind_mismatch"
    table = tmp_path / "table"
    table.mkdir()
    (table / "data.csv").write_text("a,target\n1,0\n2,1\n")
    with pytest.raises(InvalidInput) as info:
        ingest(f"folder:{table}", tmp_path / "raw", kind="classification")
    assert info.value.code == "unsupported_layout"


# -- validation -------------------------------------------------------------------------------


def test_a_clean_set_passes_with_its_class_counts(copy, tmp_path):
    report = validate_dataset(copy, report_path=tmp_path / "report.json")
    assert report.ok and report.kind == "classification" and not report.warnings
    assert report.stats["classes"] == {"circle": 12, "square": 12, "triangle": 12}
    assert report.stats["width"] == {"min": 32, "max": 32}


def test_an_undecodable_image_is_an_error(copy):
    broken = sorted((copy / "square").glob("*.jpg"))[0]
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    report = _report(copy)
    assert _codes(report["errors"]) == {"undecodable_image"}
    assert report["errors"][0]["file"] == f"square/{broken.name}"


def test_a_small_class_is_an_error_and_an_imbalanced_set_a_warning(copy):
    for image in sorted((copy / "triangle").glob("*.jpg"))[1:]:
        image.unlink()
    report = _report(copy)
    assert _codes(report["errors"]) == {"too_few_images"}
    assert "class_imbalance" in _codes(report["warnings"])
    assert report["stats"]["classes"]["triangle"] == 1

    relaxed = validate_dataset(copy, policy=ValidationPolicy(min_class_images=1))
    assert relaxed.ok and "class_imbalance" in relaxed.codes("warnings")


def test_the_same_image_under_two_classes_is_an_error_whatever_the_policy(copy):
    shutil.copyfile(sorted((copy / "circle").glob("*.jpg"))[0], copy / "square" / "looks_like_a_circle.jpg")
    report = _report(copy, ValidationPolicy(duplicates="warning"))
    assert _codes(report["errors"]) == {"duplicate_across_classes"}
    assert "['circle', 'square']" in report["errors"][0]["message"]


def test_a_copy_within_a_class_follows_the_duplicates_policy(copy):
    shutil.copyfile(sorted((copy / "circle").glob("*.jpg"))[0], copy / "circle" / "again.jpg")
    assert _codes(_report(copy)["errors"]) == {"duplicate_image"}
    lenient = validate_dataset(copy, policy=ValidationPolicy(duplicates="warning"))
    assert lenient.ok and lenient.codes("warnings") == {"duplicate_image"}


def test_unknown_classes_unsorted_names_and_stray_files_are_reported(copy):
    shutil.copytree(copy / "circle", copy / "blob")
    shutil.copyfile(sorted((copy / "circle").glob("*.jpg"))[1], copy / "stray.jpg")
    info = read_dataset_info(copy)
    (copy / "dataset.json").write_text(json.dumps({**info, "names": ["triangle", "square", "circle"]}))
    report = _report(copy)
    # The images of an unknown class and stray images are not samples: nothing is counted twice.
    assert _codes(report["errors"]) == {"unknown_class", "class_names_unsorted"}
    assert _codes(report["warnings"]) == {"stray_image"}


def test_a_duplicate_across_splits_of_a_prepared_set_is_flagged(copy, tmp_path):
    prepared = prepare_dataset(copy, tmp_path / "prepared", SplitSpec(seed=0))
    assert validate_dataset(prepared.path).ok
    test_image = next((prepared.path / "test" / "circle").glob("*.jpg"))
    shutil.copyfile(test_image, prepared.path / "train" / "circle" / "leaked.jpg")

    report = _report(prepared.path)
    assert _codes(report["errors"]) == {"duplicate_across_splits"}
    assert "test and train" in report["errors"][0]["message"]
    lenient = validate_dataset(prepared.path, policy=ValidationPolicy(duplicates="warning"))
    assert lenient.codes("warnings") == {"duplicate_across_splits"}


# -- prepare ----------------------------------------------------------------------------------


def test_prepare_splits_every_class_in_ultralytics_layout(raw, tmp_path):
    report = tmp_path / "report.json"
    validate_dataset(raw, report_path=report)
    prepared = prepare_dataset(
        raw, tmp_path / "prepared", SplitSpec(val=0.25, test=0.25, seed=1), validation_report=report
    )

    assert prepared.kind == "classification" and prepared.data_yaml is None
    assert prepared.ultralytics_data == str(prepared.path)
    assert prepared.class_names == ("circle", "square", "triangle")
    # Stratified: each class is cut 6/3/3, so every split has the whole class mix.
    assert prepared.counts == {"train": 18, "val": 9, "test": 9}
    for split, expected in (("train", 6), ("val", 3), ("test", 3)):
        assert prepared.class_counts[split] == dict.fromkeys(prepared.class_names, expected)
        for name in prepared.class_names:
            assert len(list((prepared.path / split / name).glob("*.jpg"))) == expected
    manifest = json.loads(prepared.manifest_path.read_text())
    assert manifest["kind"] == "classification" and len(manifest["files"]) == 36
    assert {entry["path"].split("/")[0] for entry in manifest["files"]} == {"train", "val", "test"}
    assert prepared.validation_report is not None and prepared.validation_report.is_file()
    assert read_dataset_info(prepared.path)["split"] == {"val": 0.25, "test": 0.25, "seed": 1}
    assert load_prepared(prepared.path, kind="classification") == prepared
    with pytest.raises(InvalidInput):
        load_prepared(prepared.path, kind="detection")


def test_prepare_is_deterministic_and_versioned_by_content(raw, tmp_path):
    first = prepare_dataset(raw, tmp_path / "a", SplitSpec(seed=0))
    again = prepare_dataset(raw, tmp_path / "b", SplitSpec(seed=0))
    assert first.data_version == again.data_version
    assert _digests(first.path) == _digests(again.path)
    reseeded = prepare_dataset(raw, tmp_path / "c", SplitSpec(seed=1))
    assert reseeded.data_version != first.data_version
    assert reseeded.counts == first.counts  # the same shares, other images in them

    changed = tmp_path / "changed"
    shutil.copytree(raw, changed)
    image = sorted((changed / "square").glob("*.jpg"))[0]
    Image.new("RGB", (32, 32), (1, 2, 3)).save(image)
    assert prepare_dataset(changed, tmp_path / "d", SplitSpec(seed=0)).data_version != first.data_version


def test_prepare_refuses_a_class_without_images(copy, tmp_path):
    for image in (copy / "triangle").glob("*.jpg"):
        image.unlink()
    with pytest.raises(InvalidInput) as info:
        prepare_dataset(copy, tmp_path / "prepared")
    assert info.value.code == "dataset_empty" and "triangle" in info.value.message

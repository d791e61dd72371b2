"""`manage.py register_model` does what its help promises, and any bad file is a one-line error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb
from django.core.management import CommandError, call_command

from backend.registry.models import ModelVersion

pytestmark = [pytest.mark.django_db]


def booster(tmp_path, *, names: list[str] | None, classes: int = 2):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 3))
    labels = rng.integers(0, classes, 60)
    params = {"objective": "binary:logistic"} if classes == 2 else {"objective": "multi:softprob", "num_class": classes}
    model = xgb.train(params, xgb.DMatrix(features, label=labels, feature_names=names), num_boost_round=3)
    path = tmp_path / "model.json"
    model.save_model(str(path))
    return path


def register(name: str, *args: str) -> ModelVersion:
    call_command("register_model", "--name", name, "--kind", "tabular", *args, stdout=open("/dev/null", "w"))  # noqa: SIM115
    return ModelVersion.objects.filter(model__name=name).latest("version")


def test_names_and_classes_come_from_the_model(tmp_path, unique_name):
    version = register(unique_name, "--artifact", str(booster(tmp_path, names=["height", "width", "depth"])))
    assert [f["name"] for f in version.metadata["feature_schema"]] == ["height", "width", "depth"]
    assert version.metadata["class_names"] == ["0", "1"]

    unnamed = register(f"{unique_name}-b", "--artifact", str(booster(tmp_path, names=None, classes=3)))
    assert [f["name"] for f in unnamed.metadata["feature_schema"]] == ["f0", "f1", "f2"]
    assert unnamed.metadata["class_names"] == ["0", "1", "2"]


def test_a_schema_may_be_a_plain_list_of_names(tmp_path, unique_name):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(["a", "b", "c"]))
    version = register(
        unique_name, "--artifact", str(booster(tmp_path, names=None)), "--feature-schema", str(schema),
        "--class-names", "no,yes",
    )  # fmt: skip
    assert version.metadata["feature_schema"] == [{"name": n, "dtype": "float"} for n in "abc"]
    assert version.metadata["class_names"] == ["no", "yes"]


@pytest.mark.parametrize(
    ("artifact", "schema", "classes", "message"),
    [
        ("garbage", None, None, "is not an XGBoost model"),
        ("model", '["a", "b"]', None, "has 2 features; the model takes 3"),
        ("model", '["x", "y", "z"]', None, "differ from the model's own"),
        ("model", "{not json", None, "is not JSON"),
        ("model", "[1, 2, 3]", None, "neither a name nor an object"),
        ("model", None, "a,b,c", "gives 3 classes; the model has 2"),
    ],
    ids=["not-a-model", "too-few", "other-names", "bad-json", "not-names", "classes"],
)
def test_bad_files_are_one_line_errors(tmp_path, unique_name, artifact, schema, classes, message):
    model = booster(tmp_path, names=["h", "w", "d"])
    if artifact == "garbage":
        model.write_bytes(b"\x00\x01 not a model")
    args = ["--artifact", str(model)]
    if schema is not None:
        (tmp_path / "schema.json").write_text(schema)
        args += ["--feature-schema", str(tmp_path / "schema.json")]
    if classes:
        args += ["--class-names", classes]
    with pytest.raises(CommandError) as raised:
        register(unique_name, *args)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert not ModelVersion.objects.filter(model__name=unique_name).exists()

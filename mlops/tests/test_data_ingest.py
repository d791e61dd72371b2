"""Ingest: offline sources, the two image layouts and a table, and Kaggle (its servers mocked only)."""

import base64
import io
import json
import socket
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import requests

from mlops.data.ingest import ingest
from mlops.data.network import probe_http
from mlops.data.synthetic import ShapesSpec, generate_shapes
from mlops.exceptions import InvalidInput, OfflineError


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return generate_shapes(tmp_path_factory.mktemp("shapes") / "raw", ShapesSpec(count=6, imgsz=64, seed=2))


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())


def _info(root: Path) -> dict:
    return json.loads((root / "dataset.json").read_text())


def test_offline_sources(tmp_path):
    result = ingest("synthetic:shapes", tmp_path / "shapes", options={"count": 3, "imgsz": 64})
    assert (result.kind, result.items, result.class_names) == ("detection", 3, ("circle", "square", "triangle"))
    assert len(list((tmp_path / "shapes" / "labels").glob("*.txt"))) == 3

    table = ingest("sklearn:breast_cancer", tmp_path / "bc")
    assert (table.kind, table.items) == ("tabular", 569)
    synthetic = ingest("synthetic:tabular", tmp_path / "tab", options={"rows": 50, "features": 6, "informative": 2})
    assert len(pd.read_parquet(synthetic.path / "table.parquet")) == 50

    with pytest.raises(InvalidInput) as info:
        ingest("ftp:somewhere", tmp_path / "x")
    assert info.value.code == "bad_source"
    with pytest.raises(InvalidInput):
        ingest("synthetic:shapes", tmp_path / "y", options={"colour": "red"})


def test_yolo_folder_with_split_subfolders_is_flattened(tmp_path, shapes):
    source = tmp_path / "download"
    stems = sorted(p.stem for p in (shapes / "images").glob("*.jpg"))
    for index, stem in enumerate(stems):
        split = "train" if index < 4 else "valid"
        _copy(shapes / "images" / f"{stem}.jpg", source / "images" / split / f"{stem}.jpg")
        if index != 0:  # the first image has no label file: a background image in YOLO's convention
            _copy(shapes / "labels" / f"{stem}.txt", source / "labels" / split / f"{stem}.txt")
    (source / "data.yaml").write_text("names:\n  0: circle\n  1: square\n  2: triangle\n")
    (source / "README.md").write_text("a dataset")

    result = ingest(f"folder:{source}", tmp_path / "raw")

    assert result.kind == "detection" and result.items == 6
    assert _info(result.path)["names"] == ["circle", "square", "triangle"]
    names = sorted(p.name for p in (result.path / "images").iterdir())
    assert names[0].startswith("train__") and names[-1].startswith("val__")
    assert (result.path / "labels" / f"train__{stems[0]}.txt").read_text() == ""
    assert (result.path / "labels" / f"train__{stems[1]}.txt").read_text() == (
        shapes / "labels" / f"{stems[1]}.txt"
    ).read_text()


def test_roboflow_style_split_folders_with_a_names_list(tmp_path, shapes):
    source = tmp_path / "download" / "export"
    for index, image in enumerate(sorted((shapes / "images").glob("*.jpg"))):
        split = "train" if index % 2 else "test"
        _copy(image, source / split / "images" / image.name)
        _copy(shapes / "labels" / f"{image.stem}.txt", source / split / "labels" / f"{image.stem}.txt")
    (source / "data.yaml").write_text("nc: 3\nnames: ['circle', 'square', 'triangle']\n")

    result = ingest(f"folder:{tmp_path / 'download'}", tmp_path / "raw")

    assert result.items == 6 and result.class_names == ("circle", "square", "triangle")
    assert len(list((result.path / "labels").glob("*.txt"))) == 6


def test_class_folders_become_one_box_per_image(tmp_path, shapes):
    source = tmp_path / "download"
    images = sorted((shapes / "images").glob("*.jpg"))
    for index, image in enumerate(images):
        label = ("cat", "dog")[index % 2]
        split = "train" if index < 4 else "test"
        _copy(image, source / split / label / image.name)

    result = ingest(f"folder:{source}", tmp_path / "raw")

    assert result.class_names == ("cat", "dog")
    assert _info(result.path)["layout"] == "class_folders"
    labels = {p.name: p.read_text() for p in (result.path / "labels").glob("*.txt")}
    assert len(labels) == 6
    assert labels[f"train__dog__{images[1].stem}.txt"] == "1 0.5 0.5 1.0 1.0\n"
    assert labels[f"test__cat__{images[4].stem}.txt"] == "0 0.5 0.5 1.0 1.0\n"


def test_a_single_csv_becomes_a_table_with_named_classes(tmp_path):
    source = tmp_path / "download"
    source.mkdir()
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0, 1, 0, 1], "species": ["x", "y", "x", "y"]})
    frame.to_csv(source / "data.csv", index=False)
    (source / "sample.csv").write_text("a\n1\n")

    result = ingest(f"folder:{source}", tmp_path / "raw", options={"target": "species"})

    info = _info(result.path)
    assert (result.kind, info["target"], info["class_names"]) == ("tabular", "species", ["x", "y"])
    assert pd.read_parquet(result.path / "table.parquet")["species"].tolist() == [0, 1, 0, 1]


def test_a_folder_without_a_known_layout_is_refused(tmp_path):
    (tmp_path / "download").mkdir()
    (tmp_path / "download" / "notes.txt").write_text("nothing useful")
    with pytest.raises(InvalidInput) as info:
        ingest(f"folder:{tmp_path / 'download'}", tmp_path / "raw")
    assert info.value.code == "unsupported_layout"


# -- Kaggle ------------------------------------------------------------------------------------


@pytest.fixture
def kaggle_env(tmp_path, monkeypatch):
    """No credentials from this machine's home or environment leak into the test."""
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_API_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle-config"))
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub-cache"))
    return monkeypatch


@pytest.mark.timeout(30)
def test_kaggle_without_credentials_fails_fast_naming_them(tmp_path, kaggle_env):
    with pytest.raises(OfflineError) as info:
        ingest("kaggle:someone/some-dataset", tmp_path / "raw")
    assert info.value.code == "kaggle_credentials_missing"
    assert "KAGGLE_USERNAME" in info.value.message and "kaggle.json" in info.value.message
    assert not (tmp_path / "raw").exists()


@pytest.mark.timeout(30)
def test_kaggle_unreachable_fails_fast_naming_the_endpoint(tmp_path, kaggle_env):
    # Kaggle's TEST environment is http://localhost:7777: a closed port is a network without Kaggle.
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", 7777)) == 0:
            pytest.skip("something listens on port 7777")
    kaggle_env.setenv("KAGGLE_API_ENVIRONMENT", "TEST")
    kaggle_env.setenv("KAGGLE_USERNAME", "someone")
    kaggle_env.setenv("KAGGLE_KEY", "not-a-real-key")
    with pytest.raises(OfflineError) as info:
        ingest("kaggle:someone/some-dataset", tmp_path / "raw")
    assert info.value.code == "kaggle_unreachable"
    assert "localhost:7777" in info.value.message


@pytest.mark.timeout(10)
def test_a_probe_gives_up_at_its_deadline():
    # A server that accepts the connection and never answers: what a stalled proxy looks like.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        problem = probe_http(f"http://127.0.0.1:{port}/", timeout=0.5)
    assert problem is not None
    assert "timed out" in problem or "no answer" in problem


def _zip_of(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _response(request, status: int, body: bytes, content_type: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers["Content-Type"] = content_type
    response.headers["Content-Length"] = str(len(body))
    response.raw = io.BytesIO(body)
    response.url = request.url
    response.request = request
    return response


@pytest.mark.timeout(60)
def test_kaggle_download_runs_kagglehub_and_converts_the_archive(tmp_path, kaggle_env, shapes):
    """kagglehub's own code runs end to end; only Kaggle's servers are replaced, at the HTTP send."""
    kaggle_env.setenv("KAGGLE_USERNAME", "someone")
    kaggle_env.setenv("KAGGLE_KEY", "secret-key")
    export = tmp_path / "export"
    for image in sorted((shapes / "images").glob("*.jpg")):
        _copy(image, export / "train" / "images" / image.name)
        _copy(shapes / "labels" / f"{image.stem}.txt", export / "train" / "labels" / f"{image.stem}.txt")
    (export / "data.yaml").write_text("names: [circle, square, triangle]\n")
    archive = _zip_of(export)
    calls = []

    def kaggle_servers(session, request, **kwargs):
        calls.append(request)
        assert request.url.startswith("https://api.kaggle.com"), f"unexpected network call to {request.url}"
        if request.method == "HEAD":
            return _response(request, 200, b"", "text/html")
        if request.url.endswith("/GetDataset"):
            body = json.dumps({"ref": "someone/shapes", "currentVersionNumber": 3}).encode()
            return _response(request, 200, body, "application/json")
        if request.url.endswith("/DownloadDataset"):
            return _response(request, 200, archive, "application/zip")
        raise AssertionError(f"unexpected Kaggle call {request.method} {request.url}")

    kaggle_env.setattr(requests.Session, "send", kaggle_servers)

    result = ingest("kaggle:someone/shapes", tmp_path / "raw" / "shapes")

    assert (result.kind, result.items, result.class_names) == ("detection", 6, ("circle", "square", "triangle"))
    assert _info(result.path)["source"] == "kaggle:someone/shapes"
    assert len(list((result.path / "labels").glob("train__*.txt"))) == 6
    assert not (tmp_path / "raw" / ".shapes.download").exists()
    downloads = [call for call in calls if call.url.endswith("/DownloadDataset")]
    assert len(downloads) == 1
    assert json.loads(downloads[0].body) == {"ownerSlug": "someone", "datasetSlug": "shapes", "datasetVersionNumber": 3}
    expected_auth = "Basic " + base64.b64encode(b"someone:secret-key").decode()
    assert downloads[0].headers["Authorization"] == expected_auth


@pytest.mark.timeout(60)
def test_kaggle_download_of_class_folders_becomes_a_classification_set_when_asked(tmp_path, kaggle_env, shapes):
    kaggle_env.setenv("KAGGLE_USERNAME", "someone")
    kaggle_env.setenv("KAGGLE_KEY", "secret-key")
    export = tmp_path / "export"
    for index, image in enumerate(sorted((shapes / "images").glob("*.jpg"))):
        _copy(image, export / "PetImages" / ("Cat", "Dog")[index % 2] / image.name)
    archive = _zip_of(export)

    def kaggle_servers(session, request, **kwargs):
        assert request.url.startswith("https://api.kaggle.com"), f"unexpected network call to {request.url}"
        if request.method == "HEAD":
            return _response(request, 200, b"", "text/html")
        if request.url.endswith("/GetDataset"):
            body = json.dumps({"ref": "someone/pets", "currentVersionNumber": 1}).encode()
            return _response(request, 200, body, "application/json")
        if request.url.endswith("/DownloadDataset"):
            return _response(request, 200, archive, "application/zip")
        raise AssertionError(f"unexpected Kaggle call {request.method} {request.url}")

    kaggle_env.setattr(requests.Session, "send", kaggle_servers)

    result = ingest("kaggle:someone/pets", tmp_path / "raw" / "pets", kind="classification")

    assert (result.kind, result.items, result.class_names) == ("classification", 6, ("Cat", "Dog"))
    info = _info(result.path)
    assert (info["kind"], info["source"], info["names"]) == ("classification", "kaggle:someone/pets", ["Cat", "Dog"])
    assert len(list((result.path / "Cat").glob("PetImages__*.jpg"))) == 3
    assert not (result.path / "labels").exists()


def test_a_kind_the_source_cannot_become_is_refused_before_anything_is_written(tmp_path, shapes):
    with pytest.raises(InvalidInput) as info:
        ingest("sklearn:breast_cancer", tmp_path / "raw", kind="classification")
    assert info.value.code == "kind_mismatch"
    with pytest.raises(InvalidInput) as info:
        ingest(f"folder:{shapes}", tmp_path / "raw", kind="tabular")
    assert info.value.code == "unsupported_layout"
    assert not (tmp_path / "raw").exists()

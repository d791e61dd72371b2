"""Artifact files: hashing, and turning a stored URI into a local, verified path.

A local artifact store (file:// URIs, the embedded default) is read in place; anything else is
downloaded once into the model cache with MLflow's artifact client, imported only then.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlops.exceptions import IntegrityError, NotFound
from mlops.registry.entities import Artifact

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def local_path_of(uri: str) -> Path | None:
    """The filesystem path behind a file:// URI or a plain path; None for remote URIs."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri:
        return Path(uri)
    return None


def fetch_artifact(artifact: Artifact, cache_dir: Path, *, verify: bool = True) -> Path:
    """A local path holding `artifact`'s bytes, checked against its recorded sha256."""
    path = local_path_of(artifact.uri)
    if path is None:
        path = Path(cache_dir) / artifact.sha256[:16] / artifact.filename
        if not path.exists():
            _download(artifact.uri, path)
    if not path.exists():
        raise NotFound(f"artifact {artifact.role} is missing from the store: {artifact.uri}", code="artifact_missing")
    if verify:
        verify_artifact(artifact, path)
    return path


def verify_artifact(artifact: Artifact, path: Path) -> None:
    actual = sha256_file(path)
    if actual != artifact.sha256:
        raise IntegrityError(
            f"artifact {artifact.role} ({artifact.filename}) does not match its recorded sha256",
            details={"role": artifact.role, "expected": artifact.sha256, "actual": actual, "uri": artifact.uri},
        )


def _download(uri: str, destination: Path) -> None:
    from mlflow.artifacts import download_artifacts

    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = destination.parent / f".download-{os.getpid()}"
    staging.mkdir(exist_ok=True)
    try:
        downloaded = Path(download_artifacts(artifact_uri=uri, dst_path=str(staging)))
        os.replace(downloaded, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("artifact.downloaded uri=%s path=%s", uri, destination)

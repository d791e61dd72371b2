"""MLflow's own scoring server (`mlflow models serve`) of a registered version, and its request body.

The registry logs a detection version in MLflow's ONNX flavour with a tensor signature read from
the graph (mlops/registry/mlflow_store.py: `images`, float32, 1x3x640x640 for a fixed export,
-1x3x-1x-1 for a dynamic one). A client of that server therefore sends the letterboxed,
normalised tensor itself, as JSON (`{"inputs": {"images": [...]}}`), and receives the raw
network output (`output0`, 1x84xN) without NMS or boxes.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np


def serve_command(model_uri: str, port: int) -> list[str]:
    """`mlflow models serve` in the local environment (no conda, no virtualenv), one worker."""
    mlflow = Path(sys.executable).parent / "mlflow"
    return [
        str(mlflow), "models", "serve", "-m", model_uri, "--env-manager", "local",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip


def input_signature(model_uri: str) -> list[dict]:
    """The input tensors the registered version's signature declares (name, dtype, shape)."""
    from mlflow.models import get_model_info

    return get_model_info(model_uri).signature.inputs.to_dict()


def request_body(jpeg: bytes, preprocess, signature: list[dict]) -> bytes:
    """The JSON body for one photo: decoded, letterboxed by `preprocess`, checked against the signature."""
    from PIL import Image

    (spec,) = signature
    tensor, _ = preprocess(np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")))
    expected = spec["tensor-spec"]["shape"]
    if len(expected) != tensor.ndim or any(e not in (-1, t) for e, t in zip(expected, tensor.shape, strict=True)):
        raise ValueError(f"tensor {tensor.shape} does not fit the signature's {expected}")
    tensor = np.asarray(tensor, dtype=spec["tensor-spec"]["dtype"])
    return json.dumps({"inputs": {spec["name"]: tensor.tolist()}}).encode()

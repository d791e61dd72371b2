"""Turn an XGBoost JSON model into ONNX, so serving runs tabular models on ONNX Runtime too.

Importing xgboost pulls in scikit-learn, SciPy and pandas (about 240 MB in a serving process);
ONNX Runtime is already there for the detectors. The JSON model stays the source of truth.
"""

from __future__ import annotations

from pathlib import Path

ONNX_INPUT = "input"
ONNX_PROBABILITIES = "probabilities"


def xgboost_json_to_onnx(json_path: Path | str, n_features: int, onnx_path: Path | str) -> Path:
    import onnxmltools
    import xgboost as xgb
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = xgb.Booster()
    booster.load_model(str(json_path))
    # onnxmltools reads feature names of the form f0, f1, ...: the schema gives the order.
    booster.feature_names = None
    model = onnxmltools.convert_xgboost(
        booster, initial_types=[(ONNX_INPUT, FloatTensorType([None, n_features]))], target_opset=15
    )
    onnx_path = Path(onnx_path)
    onnx_path.write_bytes(model.SerializeToString())
    return onnx_path

"""mlops is plain Python: importing every module of it loads no web or queue framework, and serving a
classifier loads no training framework either."""

import json
import subprocess
import sys
from pathlib import Path

from mlops.tests.classifier_support import NAMES, asset

PROBE = """
import importlib, pkgutil, sys
import mlops
for info in pkgutil.walk_packages(mlops.__path__, "mlops."):
    if ".tests" in info.name:
        continue
    importlib.import_module(info.name)
leaked = sorted(m for m in ("django", "rest_framework", "celery") if m in sys.modules)
print(",".join(leaked))
"""


def test_importing_mlops_loads_no_framework():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"mlops imported {result.stdout.strip()}"


CLASSIFIER_PROBE = """
import json, sys
sys.path.insert(0, {root!r})
from PIL import Image
from mlops.inference.images import decode_image
from mlops.inference.loader import load_predictor, smoke_test

metadata = {{"class_names": {names!r}}}
classifier = load_predictor("classification", {{"onnx": {onnx!r}}}, metadata)
image = decode_image(open({image!r}, "rb").read(), max_pixels=40_000_000, max_side=12_000)
result = classifier.predict(image)
assert smoke_test(classifier, metadata).ok
heavy = ("torch", "torchvision", "ultralytics", "cv2", "xgboost", "mlflow", "sklearn", "pandas", "scipy")
print(json.dumps({{"loaded": sorted(m for m in heavy if m in sys.modules), "top1": result.top1.class_name}}))
"""


def test_serving_a_classifier_loads_no_training_framework(classifier_files):
    """A web process classifies on ONNX Runtime and Pillow alone: no torch, ultralytics, cv2 or pandas."""
    probe = CLASSIFIER_PROBE.format(
        root=str(Path(__file__).resolve().parents[2]),
        names=NAMES,
        onnx=str(classifier_files.onnx),
        image=str(asset("bus.jpg")),
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["top1"] in NAMES
    assert report["loaded"] == [], f"serving a classifier imported {report['loaded']}"

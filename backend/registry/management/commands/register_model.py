import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from backend.registry.services import register_from_files
from mlops.exceptions import MlopsError
from mlops.inference.classifier import OnnxClassifier
from mlops.inference.detector import OnnxDetector
from mlops.registry.entities import ArtifactRole, ModelKind

# Kinds registered from YOLO files, and what reads their ONNX export's class names and input size.
IMAGE_KINDS = {ModelKind.DETECTION: OnnxDetector, ModelKind.CLASSIFICATION: OnnxClassifier}


class Command(BaseCommand):
    help = "Register a model version from artifact files (YOLO .pt/.onnx, detector or classifier; XGBoost JSON)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--kind", required=True, choices=[kind.value for kind in ModelKind])
        parser.add_argument("--artifact", required=True, type=Path, help="YOLO .pt weights or XGBoost .json model.")
        parser.add_argument("--onnx", type=Path, help="The ONNX export served by web processes.")
        parser.add_argument("--metrics", help="JSON object or path to a JSON file of metrics.")
        parser.add_argument(
            "--feature-schema",
            type=Path,
            help="Tabular: JSON list of features in model order, as names or as {name, dtype, min, max, mean} "
            "objects (default: the names saved in the XGBoost model, else f0..fN-1).",
        )
        parser.add_argument(
            "--class-names",
            help="Comma-separated class names (default: read from the ONNX file; for XGBoost 0..n-1).",
        )
        parser.add_argument(
            "--imgsz", type=int, help="Detection, classification: input size (default: from the ONNX file)."
        )
        parser.add_argument("--description", default="")

    def handle(self, *args, **options):
        kind = ModelKind(options["kind"])
        for option in ("artifact", "onnx", "feature_schema"):
            if options[option] and not options[option].is_file():
                raise CommandError(f"--{option.replace('_', '-')} {options[option]} does not exist")
        files = {}
        if kind in IMAGE_KINDS:
            files[ArtifactRole.WEIGHTS if options["artifact"].suffix == ".pt" else ArtifactRole.ONNX] = options[
                "artifact"
            ]
        else:
            files[ArtifactRole.XGBOOST] = options["artifact"]
        if options["onnx"]:
            files[ArtifactRole.ONNX] = options["onnx"]
        try:
            metadata = self._metadata(kind, files, options)
            version = register_from_files(
                options["name"],
                kind,
                files,
                metrics=self._metrics(options["metrics"]),
                metadata=metadata,
                description=options["description"],
            )
        except MlopsError as exc:
            raise CommandError(exc.message) from exc
        except (OSError, ValueError, RuntimeError) as exc:  # a file the libraries cannot read: one line, no trace
            raise CommandError(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}") from exc
        self.stdout.write(self.style.SUCCESS(f"Registered {version} with status {version.status}."))

    def _metrics(self, raw: str | None) -> dict:
        if not raw:
            return {}
        path = Path(raw)
        try:
            text = path.read_text() if path.is_file() else raw
            return {key: float(value) for key, value in json.loads(text).items()}
        except (ValueError, AttributeError) as exc:
            raise CommandError(f"--metrics must be a JSON object of numbers: {exc}") from exc

    def _metadata(self, kind: ModelKind, files: dict, options) -> dict:
        metadata: dict = {}
        if options["class_names"]:
            metadata["class_names"] = [name.strip() for name in options["class_names"].split(",")]
        if kind in IMAGE_KINDS:
            if ArtifactRole.ONNX in files:
                model = IMAGE_KINDS[kind](files[ArtifactRole.ONNX])
                metadata.setdefault("class_names", list(model.class_names))
                metadata["imgsz"] = options["imgsz"] or model.imgsz
            elif options["imgsz"]:
                metadata["imgsz"] = options["imgsz"]
            if not metadata.get("class_names"):
                raise CommandError("Give --class-names (they could not be read from an ONNX file).")
        else:
            metadata.update(self._tabular(files[ArtifactRole.XGBOOST], options, metadata.get("class_names")))
        return metadata

    def _tabular(self, model: Path, options, class_names: list[str] | None) -> dict:
        """Schema and classes from the options, checked against what the XGBoost file says."""
        from mlops.training.xgb import read_xgboost_model  # XGBoost only for this command

        facts = read_xgboost_model(model)
        if options["feature_schema"]:
            try:
                raw = json.loads(options["feature_schema"].read_text())
            except (ValueError, UnicodeDecodeError) as exc:
                raise CommandError(f"--feature-schema is not JSON: {exc}") from exc
        else:
            raw = facts.feature_names or [f"f{index}" for index in range(facts.n_features)]
        schema = feature_schema(raw)
        if len(schema) != facts.n_features:
            raise CommandError(f"--feature-schema has {len(schema)} features; the model takes {facts.n_features}.")
        names = [feature["name"] for feature in schema]
        if facts.feature_names and names != facts.feature_names:
            raise CommandError("--feature-schema names differ from the model's own (in name or order).")
        class_names = class_names or [str(index) for index in range(facts.n_classes)]
        if len(class_names) != facts.n_classes:
            raise CommandError(f"--class-names gives {len(class_names)} classes; the model has {facts.n_classes}.")
        return {"feature_schema": schema, "class_names": class_names}


def feature_schema(raw) -> list[dict]:
    """A schema from a list of names or of {name, ...} objects; CommandError for anything else."""
    if not isinstance(raw, list) or not raw:
        raise CommandError("--feature-schema must be a JSON list of feature names or objects.")
    schema = []
    for index, item in enumerate(raw):
        if isinstance(item, str) and item.strip():
            schema.append({"name": item.strip(), "dtype": "float"})
        elif isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"].strip():
            schema.append(item)
        else:
            raise CommandError(f"--feature-schema entry {index} is neither a name nor an object with a name.")
    if len({feature["name"] for feature in schema}) != len(schema):
        raise CommandError("--feature-schema names a feature twice.")
    return schema

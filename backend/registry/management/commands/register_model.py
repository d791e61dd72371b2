import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from backend.registry.services import register_from_files
from mlops.exceptions import MlopsError
from mlops.inference.detector import OnnxDetector
from mlops.registry.entities import ArtifactRole, ModelKind


class Command(BaseCommand):
    help = "Register a model version from artifact files (YOLO .pt/.onnx, or an XGBoost JSON model)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--kind", required=True, choices=[kind.value for kind in ModelKind])
        parser.add_argument("--artifact", required=True, type=Path, help="YOLO .pt weights or XGBoost .json model.")
        parser.add_argument("--onnx", type=Path, help="The ONNX export served by web processes.")
        parser.add_argument("--metrics", help="JSON object or path to a JSON file of metrics.")
        parser.add_argument("--feature-schema", type=Path, help="Tabular: JSON list of features in model order.")
        parser.add_argument("--class-names", help="Comma-separated class names (default: read from the model).")
        parser.add_argument("--imgsz", type=int, help="Detection: input size (default: read from the ONNX file).")
        parser.add_argument("--description", default="")

    def handle(self, *args, **options):
        kind = ModelKind(options["kind"])
        for option in ("artifact", "onnx", "feature_schema"):
            if options[option] and not options[option].is_file():
                raise CommandError(f"--{option.replace('_', '-')} {options[option]} does not exist")
        files = {}
        if kind is ModelKind.DETECTION:
            files[ArtifactRole.WEIGHTS if options["artifact"].suffix == ".pt" else ArtifactRole.ONNX] = options[
                "artifact"
            ]
        else:
            files[ArtifactRole.XGBOOST] = options["artifact"]
            if options["feature_schema"]:
                files[ArtifactRole.FEATURE_SCHEMA] = options["feature_schema"]
        if options["onnx"]:
            files[ArtifactRole.ONNX] = options["onnx"]
        metadata = self._metadata(kind, files, options)
        try:
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
        if kind is ModelKind.DETECTION:
            if ArtifactRole.ONNX in files:
                detector = OnnxDetector(files[ArtifactRole.ONNX])
                metadata.setdefault("class_names", list(detector.class_names))
                metadata["imgsz"] = options["imgsz"] or detector.imgsz
            elif options["imgsz"]:
                metadata["imgsz"] = options["imgsz"]
            if not metadata.get("class_names"):
                raise CommandError("Give --class-names (they could not be read from an ONNX file).")
        else:
            if options["feature_schema"]:
                metadata["feature_schema"] = json.loads(options["feature_schema"].read_text())
            if not metadata.get("class_names"):
                raise CommandError("Give --class-names for a tabular model (e.g. --class-names no,yes).")
        return metadata

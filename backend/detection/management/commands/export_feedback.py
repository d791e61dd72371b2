from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from backend.detection.services.feedback_export import export_feedback
from mlops.exceptions import MlopsError


class Command(BaseCommand):
    help = "Write the detections people judged as a YOLO-format dataset (images/, labels/, data.yaml)."

    def add_arguments(self, parser):
        parser.add_argument("model", help="Registered detection model name.")
        parser.add_argument("--out", required=True, type=Path, help="Directory to write the dataset into.")

    def handle(self, *args, model, out, **options):
        try:
            result = export_feedback(model, out)
        except MlopsError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"{result.images} images, {result.boxes} boxes written to {result.directory} "
            f"({result.skipped} judged detections not settled)"
        )

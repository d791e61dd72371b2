from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from backend.detection.services.feedback_export import export_feedback
from mlops.exceptions import MlopsError


class Command(BaseCommand):
    help = "Write the detections people judged as a YOLO-format dataset (images/, labels/, data.yaml)."

    def add_arguments(self, parser):
        parser.add_argument("model", help="Registered detection model name.")
        parser.add_argument("--out", required=True, type=Path, help="Directory to write the dataset into.")
        parser.add_argument(
            "--include-untrusted",
            action="store_true",
            help="Also take the verdicts of anonymous callers and other untrusted people as labels "
            "(by default only staff and holders of detection.trusted_feedback count).",
        )

    def handle(self, *args, model, out, include_untrusted, **options):
        try:
            result = export_feedback(model, out, include_untrusted=include_untrusted)
        except MlopsError as exc:
            raise CommandError(exc.message) from exc
        left_out = "" if include_untrusted else f"; {result.untrusted} untrusted verdicts left out"
        self.stdout.write(
            f"{result.images} images, {result.boxes} boxes written to {result.directory} "
            f"({result.skipped} judged detections not settled{left_out})"
        )

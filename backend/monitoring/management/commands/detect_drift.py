from django.core.management.base import BaseCommand, CommandError

from backend.monitoring.models import DriftReport
from backend.monitoring.services.drift import Window, check_drift
from mlops.exceptions import MlopsError


class Command(BaseCommand):
    help = "Check a model's drift now (its production version, or --version) and print the summary."

    def add_arguments(self, parser):
        parser.add_argument("name")
        window = parser.add_mutually_exclusive_group()
        window.add_argument("--window", type=int, metavar="N", help="the latest N predictions (default: settings)")
        window.add_argument("--hours", type=float, metavar="T", help="the predictions of the last T hours")
        parser.add_argument("--model-version", type=int, help="a version number instead of the production version")

    def handle(self, *args, name, window, hours, model_version, **options):
        try:
            chosen = Window(predictions=window, hours=hours) if (window or hours) else None
            report = check_drift(name, window=chosen, version=model_version, trigger=DriftReport.Trigger.COMMAND)
        except MlopsError as exc:
            raise CommandError(exc.message) from exc
        style = {DriftReport.Status.DRIFT: self.style.ERROR, DriftReport.Status.OK: self.style.SUCCESS}
        paint = style.get(report.status, self.style.WARNING)
        self.stdout.write(paint(f"{report.version}: {report.get_status_display()}. {report.message}"))
        self.stdout.write(
            f"reference: {report.reference_source} ({report.reference_size} rows); "
            f"window: {report.current_size} predictions {report.window_start or ''} .. {report.window_end or ''}"
        )
        for column in report.columns:
            mark = "DRIFT" if column["drifted"] else "ok"
            self.stdout.write(
                f"  {column['column']:<24} {column['method']:<14} score {column['score']:.4g} "
                f"(threshold {column['threshold']:.4g})  {mark}"
            )
        if report.html:
            self.stdout.write(f"report #{report.pk}, HTML: {report.html.name}")
        if report.status == DriftReport.Status.FAILED:
            raise CommandError(report.message)

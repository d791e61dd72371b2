from django.core.management.base import BaseCommand, CommandError

from backend.registry.models import RegisteredModel
from mlops.exceptions import ModelNotFound


class Command(BaseCommand):
    help = "List a model's versions with status, label, key metrics and lineage."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        try:
            model = RegisteredModel.objects.named(name)
        except ModelNotFound as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"{'version':>7}  {'label':<7} {'status':<10} {'created':<16} {'data':<12} metrics")
        for version in model.versions.order_by("-version"):
            metrics = " ".join(f"{key}={value:.3f}" for key, value in version.key_metrics().items())
            self.stdout.write(
                f"{version.version:>7}  {version.semantic_label:<7} {version.status:<10} "
                f"{version.created_at:%Y-%m-%d %H:%M} {version.data_version[:12]:<12} {metrics}"
            )

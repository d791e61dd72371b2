from django.core.management.base import BaseCommand, CommandError

from backend.registry.models import ModelVersion
from backend.registry.services import promote_version
from mlops.exceptions import MlopsError


class Command(BaseCommand):
    help = "Promote a model version to production (smoke test first; refused attempts are recorded)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("version", type=int, help="MLflow version number.")
        parser.add_argument("--reason", default="promoted from the command line")

    def handle(self, *args, name, version, reason, **options):
        try:
            target = ModelVersion.objects.select_related("model").get(model__name=name, version=version)
            deployment = promote_version(target, reason=reason)
        except ModelVersion.DoesNotExist as exc:
            raise CommandError(f"{name} has no version {version}") from exc
        except MlopsError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"{deployment.to_version} is in production (deployment {deployment.pk})."))

from django.core.management.base import BaseCommand, CommandError

from backend.registry.models import ModelVersion
from backend.registry.services import promote_version
from mlops.exceptions import MlopsError


class Command(BaseCommand):
    help = (
        "Promote a model version to production (smoke test first; refused attempts are recorded). "
        "Runs as the system: the deployment is recorded as the product's own, with the reason given."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("version", type=int, help="MLflow version number.")
        parser.add_argument("--reason", default="promoted from the command line")

    def handle(self, *args, name, version, reason, **options):
        try:
            target = ModelVersion.objects.select_related("model").get(model__name=name, version=version)
            # No actor: whoever can run manage.py already holds the whole installation; the row says "system".
            deployment = promote_version(target, actor=None, reason=f"manage.py promote: {reason}")
        except ModelVersion.DoesNotExist as exc:
            raise CommandError(f"{name} has no version {version}") from exc
        except MlopsError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"{deployment.to_version} is in production (deployment {deployment.pk})."))

from django.core.management.base import BaseCommand, CommandError

from backend.registry.models import RegisteredModel
from backend.registry.services import rollback_model
from mlops.exceptions import MlopsError


class Command(BaseCommand):
    help = (
        "Put back the version that was in production before the current one. "
        "Runs as the system: the deployment is recorded as the product's own, with the reason given."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--reason", default="rolled back from the command line")

    def handle(self, *args, name, reason, **options):
        try:
            # No actor: whoever can run manage.py already holds the whole installation; the row says "system".
            model = RegisteredModel.objects.named(name)
            deployment = rollback_model(model, actor=None, reason=f"manage.py rollback: {reason}")
        except MlopsError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"{name} rolled back to {deployment.to_version}."))

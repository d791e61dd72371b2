from django.conf import settings
from django.core.management.base import BaseCommand

from backend.registry import services
from backend.registry.models import RegisteredModel


class Command(BaseCommand):
    help = (
        "Delete the artifacts of old versions, keeping the newest --keep, production, the version before it, "
        "staging and anything awaiting approval. Records and lineage stay."
    )

    def add_arguments(self, parser):
        parser.add_argument("--keep", type=int, default=settings.REGISTRY_KEEP_VERSIONS)
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, keep, dry_run, **options):
        total = 0
        for model in RegisteredModel.objects.all():
            for version in services.versions_to_purge(model, keep_latest=keep):
                total += 1
                if dry_run:
                    self.stdout.write(f"would delete the artifacts of {version}")
                else:
                    services.purge_version_artifacts(version)
                    self.stdout.write(f"deleted the artifacts of {version}")
        self.stdout.write(self.style.SUCCESS(f"{total} version(s) {'eligible' if dry_run else 'purged'}."))

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the demo superuser (DEMO_ADMIN_USERNAME / DEMO_ADMIN_PASSWORD) if it does not exist."

    def handle(self, *args, **options):
        username, password = settings.DEMO_ADMIN_USERNAME, settings.DEMO_ADMIN_PASSWORD
        users = get_user_model().objects
        if not users.filter(username=username).exists():
            users.create_superuser(username=username, email=f"{username}@localhost", password=password)
            self.stdout.write(f"Created the demo admin user {username!r}.")
        self.stdout.write(
            self.style.SUCCESS(f"Demo admin: http://127.0.0.1:8000/admin/  user {username!r}  password {password!r}")
        )

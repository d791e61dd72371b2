"""The superuser `make run` creates, once, so that a newcomer can open the admin.

Its password is random and printed when it is created, kept nowhere else (not in a file, not in
the log); `manage.py changepassword` sets a new one. With DEBUG on it is the documented demo
password instead, and DEMO_ADMIN_PASSWORD chooses one. An install from before, whose demo admin
still has the demo password while DEBUG is off, gets a random one the next time this runs.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

# The demo password of a DEBUG install (README, "Two commands"); never used with DEBUG off.
DEBUG_DEMO_PASSWORD = "admin"


class Command(BaseCommand):
    help = (
        "Create the demo superuser (DEMO_ADMIN_USERNAME) if it does not exist, with a random password printed "
        "once (DEBUG: the demo password 'admin'; DEMO_ADMIN_PASSWORD: that one)."
    )

    def handle(self, *args, **options):
        username = settings.DEMO_ADMIN_USERNAME
        users = get_user_model().objects
        user = users.filter(username=username).first()
        if user is None:
            password, chosen = self._new_password(username)
            users.create_superuser(username=username, email=f"{username}@localhost", password=password)
            self.stdout.write(f"Created the demo admin user {username!r}.")
            self._show(username, None if chosen else password)
        elif self._still_has_demo_password(user):
            password = secrets.token_urlsafe(15)
            user.set_password(password)
            user.save(update_fields=["password"])
            self.stdout.write(
                self.style.WARNING(f"The demo admin {username!r} had the demo password outside DEBUG: replaced.")
            )
            self._show(username, password)
        else:
            self.stdout.write(
                f"Demo admin: http://127.0.0.1:8000/admin/  user {username!r} exists (its password is unchanged; "
                f"`python manage.py changepassword {username}` sets a new one)."
            )

    def _new_password(self, username: str) -> tuple[str, bool]:
        """(the password, whether the operator chose it): DEMO_ADMIN_PASSWORD, DEBUG's demo one, or random."""
        if chosen := settings.DEMO_ADMIN_PASSWORD:
            if not settings.DEBUG:
                try:
                    validate_password(chosen, get_user_model()(username=username))
                except ValidationError as exc:
                    raise CommandError(f"DEMO_ADMIN_PASSWORD is too weak: {' '.join(exc.messages)}") from exc
            return chosen, True
        if settings.DEBUG:
            return DEBUG_DEMO_PASSWORD, False
        return secrets.token_urlsafe(15), False

    @staticmethod
    def _still_has_demo_password(user) -> bool:
        return not settings.DEBUG and not settings.DEMO_ADMIN_PASSWORD and user.check_password(DEBUG_DEMO_PASSWORD)

    def _show(self, username: str, password: str | None) -> None:
        """The one place the password is ever shown (None: the operator's own, from DEMO_ADMIN_PASSWORD)."""
        if password is None:
            secret = "the password from DEMO_ADMIN_PASSWORD"
        elif password == DEBUG_DEMO_PASSWORD:
            secret = f"password {password!r} (the DEBUG demo password)"
        else:
            secret = f"password {password!r}  (shown only now: note it, or use `manage.py changepassword`)"
        self.stdout.write(self.style.SUCCESS(f"Demo admin: http://127.0.0.1:8000/admin/  user {username!r}  {secret}"))

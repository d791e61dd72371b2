"""`make run`'s demo admin: a random password shown once, the demo password only with DEBUG on."""

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.DEMO_ADMIN_USERNAME = "admin"
    settings.DEMO_ADMIN_PASSWORD = ""
    settings.DEBUG = False


def ensure_demo_admin() -> str:
    out = io.StringIO()
    call_command("ensure_demo_admin", stdout=out)
    return out.getvalue()


def shown_password(output: str) -> str:
    match = re.search(r"password '([^']+)'", output)
    assert match, output
    return match.group(1)


def test_the_demo_admin_gets_a_random_password_shown_once():
    first = ensure_demo_admin()
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    password = shown_password(first)
    assert len(password) >= 16 and password != "admin"
    assert admin.check_password(password) and not admin.check_password("admin")

    again = ensure_demo_admin()  # every `make run`: the password stays and is never shown again
    assert password not in again and "password '" not in again
    assert "changepassword admin" in again
    admin.refresh_from_db()
    assert admin.check_password(password)


def test_two_installs_get_different_passwords():
    first = shown_password(ensure_demo_admin())
    get_user_model().objects.all().delete()
    assert shown_password(ensure_demo_admin()) != first


def test_debug_keeps_the_documented_demo_password(settings):
    settings.DEBUG = True
    output = ensure_demo_admin()
    assert shown_password(output) == "admin" and "DEBUG" in output
    assert get_user_model().objects.get(username="admin").check_password("admin")


def test_an_old_install_with_the_demo_password_gets_a_random_one_outside_debug():
    get_user_model().objects.create_superuser("admin", "admin@localhost", "admin")
    output = ensure_demo_admin()
    password = shown_password(output)
    assert password != "admin" and "replaced" in output
    admin = get_user_model().objects.get(username="admin")
    assert admin.check_password(password) and not admin.check_password("admin")


def test_a_chosen_password_is_used_not_shown_and_must_be_strong(settings):
    settings.DEMO_ADMIN_PASSWORD = "admin"
    with pytest.raises(CommandError, match="too weak"):
        ensure_demo_admin()
    assert not get_user_model().objects.exists()

    settings.DEMO_ADMIN_PASSWORD = "correct-horse-battery-staple-42"
    output = ensure_demo_admin()
    assert "correct-horse" not in output and "DEMO_ADMIN_PASSWORD" in output
    assert get_user_model().objects.get(username="admin").check_password("correct-horse-battery-staple-42")

"""Who is calling: tokens for API clients, HTTP Basic only when switched on, failed sign-ins locked
out (the admin's login form and the API), 401 with a challenge without credentials, 403 without
the permission, and the session's CSRF check on unsafe methods."""

import base64
import io

import pytest
from axes.models import AccessAttempt, AccessLog
from django.core.management import call_command
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.settings import perform_import
from rest_framework.test import APIClient
from rest_framework.views import APIView

from backend.config.settings import _authentication_classes
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

MODELS_URL = "/api/v1/models/"
ROLLBACK_URL = "/api/v1/models/no-such-model/rollback/"  # CanPromote answers before the model is looked up


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.AXES_FAILURE_LIMIT = 3


@pytest.fixture
def basic_auth_on(settings, monkeypatch):
    """What API_BASIC_AUTH=true makes of the views (DRF reads the setting once, when APIView is defined)."""
    settings.API_BASIC_AUTH = True
    classes = perform_import(_authentication_classes(True), "DEFAULT_AUTHENTICATION_CLASSES")
    monkeypatch.setattr(APIView, "authentication_classes", classes)


def basic(username: str, password: str) -> dict:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def test_no_credentials_get_401_with_the_token_challenge():
    for response in (APIClient().get(MODELS_URL), APIClient().post(ROLLBACK_URL)):
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Token"
        assert response.json()["error"]["code"] == "not_authenticated"


def test_api_clients_sign_in_with_a_token_and_need_the_permission_to_act(plain_user, admin_user):
    key = Token.objects.create(user=plain_user).key
    client = APIClient(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get(MODELS_URL).status_code == 200
    denied = client.post(ROLLBACK_URL)
    assert denied.status_code == 403  # signed in, without the promote permission
    assert denied.json()["error"]["code"] == "permission_denied"

    wrong = APIClient(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567").get(MODELS_URL)
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"] == "Token"
    assert wrong.json()["error"]["code"] == "authentication_failed"

    promoter = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin_user).key}")
    assert promoter.post(ROLLBACK_URL).status_code == 404  # allowed in; there is no such model


def test_http_basic_is_off_by_default(settings, plain_user):
    assert settings.API_BASIC_AUTH is False
    assert "rest_framework.authentication.BasicAuthentication" not in _authentication_classes(False)
    response = APIClient().get(MODELS_URL, **basic("alice", "pw-alice-123"))
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"


def test_http_basic_when_on_is_locked_out_after_repeated_failures(basic_auth_on, plain_user):
    client = APIClient()
    assert client.get(MODELS_URL, **basic("alice", "pw-alice-123")).status_code == 200
    for _ in range(3):
        assert client.get(MODELS_URL, **basic("alice", "guess")).status_code == 401
    assert AccessAttempt.objects.filter(username="alice").exists()
    # Locked out: the right password no longer gets in from this address.
    assert client.get(MODELS_URL, **basic("alice", "pw-alice-123")).status_code == 401


def test_the_admin_login_form_is_locked_out_after_repeated_failures(admin_user):
    browser = Client()
    answers = [browser.post("/admin/login/", {"username": "root", "password": "guess"}).status_code for _ in range(3)]
    assert answers == [200, 200, 429]  # the form with its error twice, then the lockout
    right = browser.post("/admin/login/", {"username": "root", "password": "pw-root-123"})
    assert right.status_code == 429 and "_auth_user_id" not in browser.session

    call_command("axes_reset", stdout=io.StringIO())  # what the runbook says to do for a locked-out person
    signed_in = browser.post("/admin/login/?next=/admin/", {"username": "root", "password": "pw-root-123"})
    assert signed_in.status_code == 302 and browser.session["_auth_user_id"] == str(admin_user.pk)


def test_session_callers_keep_the_csrf_check_on_unsafe_methods(admin_user):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    assert browser.get(MODELS_URL).status_code == 200  # safe methods need no token
    refused = browser.post(ROLLBACK_URL)
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]

    # A token is not a cookie the browser sends by itself: no CSRF token needed.
    key = Token.objects.create(user=admin_user).key
    tokened = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {key}")
    assert tokened.post(ROLLBACK_URL).status_code == 404


def test_tokens_come_from_a_command_and_the_admin(admin_user):
    out = io.StringIO()
    call_command("drf_create_token", "root", stdout=out)
    key = Token.objects.get(user=admin_user).key
    assert key in out.getvalue()
    assert APIClient(HTTP_AUTHORIZATION=f"Token {key}").get(MODELS_URL).status_code == 200

    call_command("drf_create_token", "root", "--reset", stdout=io.StringIO())  # a leaked token is replaced
    assert Token.objects.get(user=admin_user).key != key
    assert APIClient(HTTP_AUTHORIZATION=f"Token {key}").get(MODELS_URL).status_code == 401

    browser = Client()
    browser.force_login(UserFactory(username="boss", superuser=True))
    assert browser.get("/admin/authtoken/tokenproxy/").status_code == 200


@pytest.mark.postgres
def test_a_sign_in_without_a_client_address_is_logged_without_one(admin_user):
    """force_login's request, or a unix socket, has no address: PostgreSQL's inet column takes NULL, not "unknown"."""
    Client().force_login(admin_user)
    assert AccessLog.objects.get(username="root").ip_address is None

"""Production settings pass Django's own deployment checks; `make run`'s local defaults stay plain HTTP."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def run_check(tmp_path, **env) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        **env,
    }
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)


def test_production_settings_pass_check_deploy(tmp_path):
    result = run_check(
        tmp_path,
        DEBUG="false",
        HTTPS="true",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="models.example.com",
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_local_defaults_are_plain_http_and_say_so(tmp_path):
    result = run_check(tmp_path, DEBUG="false")
    assert result.returncode != 0  # not production: the deployment checks say what is missing
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stdout + result.stderr

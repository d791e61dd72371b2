"""Is the MLflow store reachable? Answered without importing mlflow where the URI allows.

Importing mlflow costs a serving process about 240 MB and two seconds, so the health endpoint
checks a SQLite store with sqlite3 and a tracking server with its own /health route, and only
falls back to MLflow's client for other schemes.
"""

from __future__ import annotations

import base64
import sqlite3
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse, urlsplit, urlunsplit


def redact_uri(uri: str) -> str:
    """The URI with its password replaced by ***: what logs, checks and /health may show."""
    parts = urlsplit(uri)
    if not parts.password:
        return uri
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def scrub(text: str, *uris: str) -> str:
    """`text` with the passwords of `uris` (raw and percent-decoded) blanked out, wherever they appear."""
    for uri in uris:
        password = urlsplit(uri).password if uri else None
        if password:
            for secret in {password, unquote(password)}:
                text = text.replace(secret, "***")
    return text


def check_store(tracking_uri: str, timeout: float = 2.0) -> tuple[bool, str]:
    """Return (ok, detail) for the MLflow tracking/registry store at `tracking_uri`; the detail never
    holds the URI's password."""
    ok, detail = _check_store(tracking_uri, timeout)
    return ok, scrub(detail, tracking_uri)


def _check_store(tracking_uri: str, timeout: float) -> tuple[bool, str]:
    scheme = urlparse(tracking_uri).scheme
    try:
        if scheme == "sqlite":
            return _check_sqlite(tracking_uri, timeout)
        if scheme in ("http", "https"):
            with urllib.request.urlopen(_health_request(tracking_uri), timeout=timeout) as response:
                return response.status == 200, f"HTTP {response.status}"
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)
        return True, "ok"
    except Exception as exc:  # noqa: BLE001  (any failure means "down"; the detail says why)
        return False, f"{type(exc).__name__}: {exc}"


def _check_sqlite(uri: str, timeout: float) -> tuple[bool, str]:
    path = Path(uri.removeprefix("sqlite:///").removeprefix("sqlite://"))
    if not path.is_absolute():
        path = Path.cwd() / path
    if not path.exists():
        # MLflow creates the file on first use; an absent file with a writable parent is healthy.
        writable = path.parent.exists() and path.parent.is_dir()
        return writable, "not created yet" if writable else f"directory {path.parent} missing"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout) as conn:
        conn.execute("SELECT 1").fetchone()
    return True, "ok"


def _health_request(tracking_uri: str) -> urllib.request.Request:
    """GET <server>/health, with the URI's credentials as Basic auth rather than in the URL."""
    parts = urlsplit(tracking_uri)
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    url = urlunsplit(parts._replace(netloc=netloc, path=parts.path.rstrip("/") + "/health"))
    request = urllib.request.Request(url)
    if parts.username:
        token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    return request

"""Is the MLflow store reachable? Answered without importing mlflow where the URI allows.

Importing mlflow costs a serving process about 240 MB and two seconds, so the health endpoint
checks a SQLite store with sqlite3 and a tracking server with its own /health route, and only
falls back to MLflow's client for other schemes.
"""

from __future__ import annotations

import sqlite3
import urllib.request
from pathlib import Path
from urllib.parse import urlparse


def check_store(tracking_uri: str, timeout: float = 2.0) -> tuple[bool, str]:
    """Return (ok, detail) for the MLflow tracking/registry store at `tracking_uri`."""
    scheme = urlparse(tracking_uri).scheme
    try:
        if scheme == "sqlite":
            return _check_sqlite(tracking_uri, timeout)
        if scheme in ("http", "https"):
            with urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=timeout) as response:
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

"""The web server as the Procfile runs it (gunicorn), started by a test against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.services import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]


def database_url() -> str:
    """The test database as a URL, for processes the test starts (they must see its committed rows)."""
    from django.db import connection

    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    return f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}/{settings_dict['NAME']}"


@dataclass(frozen=True)
class WebServer:
    url: str
    port: int
    log: Path
    process: subprocess.Popen


@contextmanager
def gunicorn_server(log: Path, *, env: dict | None = None, args: tuple[str, ...] = ()) -> Iterator[WebServer]:
    """gunicorn on a free port, its output in `log`; stopped (and waited for) on the way out."""
    port = free_port()
    environment = {**os.environ, "DATABASE_URL": database_url(), "API_ANON_RATE": "100000/min", **(env or {})}
    gunicorn = Path(sys.executable).parent / "gunicorn"
    command = [str(gunicorn), "backend.config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1", *args]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process, "gunicorn", timeout=60)
        yield WebServer(f"http://127.0.0.1:{port}", port, log, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()

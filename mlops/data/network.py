"""Is a host reachable? Answered within a hard deadline, DNS included.

`socket.create_connection(timeout=...)` bounds the connect, not the name lookup, which can stall
for tens of seconds on a machine without network. The probe runs in a daemon thread and the
caller stops waiting at the deadline, so "offline" is known within seconds.
"""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlparse


def probe(host: str, port: int = 443, timeout: float = 3.0) -> str | None:
    """None when a TCP connection to host:port opens within `timeout` seconds, else why not."""
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except OSError as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=attempt, name=f"probe-{host}", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        return f"no answer within {timeout:g}s"
    return outcome[0]


def probe_url(url: str, timeout: float = 3.0) -> str | None:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return probe(parsed.hostname or "", port, timeout)


def probe_http(url: str, timeout: float = 3.0) -> str | None:
    """None when `url` answers HTTP at all (any status) within `timeout` seconds, else why not.

    Goes through `requests`, like the clients that will talk to the service next (kagglehub),
    so proxies and certificates are tried the way they will be used.
    """
    outcome: list[str | None] = []

    def attempt() -> None:
        import requests

        try:
            requests.head(url, timeout=timeout, allow_redirects=False)
            outcome.append(None)
        except requests.RequestException as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=attempt, name="probe-http", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        return f"no answer within {timeout:g}s"
    return outcome[0]

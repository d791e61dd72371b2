"""A body over the cap is refused from its Content-Length at once, before it is read or spooled,
by the web server as the Procfile runs it (gunicorn)."""

from __future__ import annotations

import http.client
import json
import time

import pytest

from tests.web import gunicorn_server

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def web(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    env = {"BATCH_UPLOAD_MAX_BYTES": str(100 * 1024 * 1024), "TMPDIR": str(spool)}
    with gunicorn_server(tmp_path / "gunicorn.log", env=env) as server:
        yield server, spool


def send_headers_only(server, path: str, length: int) -> tuple[int, dict, float]:
    """POST with a huge declared body, send 64 KB of it, and read the answer: a server that waits for
    the whole body never answers."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("POST", path)
        connection.putheader("Content-Type", "multipart/form-data; boundary=x")
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        connection.send(b"\0" * 65536)
        response = connection.getresponse()
        body = json.loads(response.read() or b"{}")
    finally:
        connection.close()
    return response.status, body, time.monotonic() - started


def test_a_three_gigabyte_upload_is_refused_before_it_is_read(web, settings):
    server, spool = web
    status, body, elapsed = send_headers_only(server, "/api/v1/detections/", 3 * 1024**3)
    assert status == 413 and body["error"]["code"] == "request_too_large"
    assert body["error"]["details"]["limit"] == settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024 * 1024
    assert elapsed < 5 and list(spool.rglob("*.upload*")) == []  # Django spools uploads as tmpXXX.upload


def test_batches_take_a_batch_and_no_more(web):
    server, _ = web
    status, body, _ = send_headers_only(server, "/api/v1/batches/", 200 * 1024 * 1024)
    assert status == 413 and body["error"]["details"]["limit"] == 101 * 1024 * 1024


def test_a_nonsense_content_length_is_a_400(client):
    response = client.post("/api/v1/detections/", data=b"x", content_type="image/png", CONTENT_LENGTH="lots")
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"

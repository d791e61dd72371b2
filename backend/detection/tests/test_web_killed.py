"""The web process killed with SIGKILL under load: every 201 already sent has its prediction row and
its stored upload, and a row the process had no time to complete gets its descriptors afterwards."""

from __future__ import annotations

import os
import signal
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.core.files.storage import default_storage
from django.utils import timezone

from backend.detection.models import Detection
from backend.detection.services.detect import fill_missing_features
from tests.helpers import wait_until
from tests.support import image_bytes, synthetic_photo
from tests.web import gunicorn_server

pytestmark = [pytest.mark.django_db(transaction=True)]

CLIENTS = 4


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def test_every_answered_upload_survives_a_killed_web_process(serve_detector, unique_name, tmp_path):
    serve_detector(0)
    # A photo large enough that its descriptors take a few milliseconds: the window a row written
    # after the answer would be lost in.
    photo = image_bytes(synthetic_photo(1600, 1200, seed=3), "JPEG", quality=90)
    env = {"DEFAULT_DETECTION_MODEL": unique_name}
    with gunicorn_server(tmp_path / "gunicorn.log", env=env, args=("--threads", str(CLIENTS))) as server:
        url = f"{server.url}/api/v1/detections/"
        assert requests.post(url, files={"image": ("warm.jpg", photo)}, timeout=60).status_code == 201
        answered: list[str] = []
        lock = threading.Lock()
        enough = threading.Event()
        stop = threading.Event()

        def client() -> None:
            with requests.Session() as session:
                while not stop.is_set():
                    try:
                        response = session.post(url, files={"image": ("p.jpg", photo)}, timeout=30)
                    except requests.RequestException:
                        continue  # the killed worker's connections; the master starts another
                    if response.status_code == 201:
                        with lock:
                            answered.append(response.json()["id"])
                            if len(answered) >= 20:
                                enough.set()

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            assert enough.wait(timeout=120), server.log.read_text(errors="replace")[-3000:]
            (worker,) = worker_pids(server.process.pid)
            # Killed the moment an answer arrives, while its request may still be finishing.
            count = len(answered)
            wait_until(lambda: len(answered) > count, timeout=30, interval=0.0005, what="another answer")
            os.kill(worker, signal.SIGKILL)
            killed_at = len(answered)
            wait_until(lambda: len(answered) >= killed_at + 10, timeout=120, what="answers from the restarted worker")
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)

    rows = {
        str(pk): row for pk, *row in Detection.objects.filter(pk__in=answered).values_list("pk", "image", "features")
    }
    lost = [pk for pk in answered if pk not in rows]
    assert lost == [], f"{len(lost)} of {len(answered)} answered uploads have no row"
    missing_files = [pk for pk, (image, _) in rows.items() if not default_storage.exists(image)]
    assert missing_files == []

    # Rows the killed process answered but never completed are completed by the sweep.
    incomplete = [pk for pk, (_, features) in rows.items() if not features]
    Detection.objects.filter(pk__in=answered).update(created_at=timezone.now() - timedelta(minutes=5))
    assert fill_missing_features() == len(incomplete)
    assert not Detection.objects.filter(pk__in=answered, features={}).exists()
    assert set(Detection.objects.get(pk=answered[0]).features) >= {"width", "height", "brightness", "sharpness"}

"""Batches refuse what would hurt (bombs, too many entries, encrypted or broken zips, files that are
not images) with a clear 4xx and nothing left behind; whatever stops a batch ends it, with the
reason; the reaper takes care of batches nobody will finish."""

from __future__ import annotations

import io
import shutil
import tracemalloc
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from backend.detection.models import Batch
from backend.detection.services import batches
from backend.serving import batches as serving_batches
from tests.support import image_bytes, synthetic_photo

pytestmark = [pytest.mark.django_db(transaction=True)]

URL = "/api/v1/batches/"
PHOTO = image_bytes(synthetic_photo(32, 32))


def post(files: dict[str, bytes]):
    uploads = [SimpleUploadedFile(name, data) for name, data in files.items()]
    return APIClient().post(URL, {"files": uploads}, format="multipart")


@pytest.fixture(autouse=True)
def no_stored_inputs(settings):
    """Each test starts with no stored batch inputs (those of earlier tests' batches wait for a worker)."""
    shutil.rmtree(Path(settings.MEDIA_ROOT) / "batches", ignore_errors=True)


def archive(entries: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as zipped:
        for name, data in entries.items():
            zipped.writestr(name, data)
    return buffer.getvalue()


def patched(data: bytes, field: tuple[int, int], value: int, *, mask: bool = False) -> bytes:
    """Every entry's local header field (offset field[0]) and central one (field[1]) set to value
    (or'ed in with mask): how a zip that Python's zipfile would not write is made."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", field[0]), (b"PK\x01\x02", field[1])):
        for at in _offsets(out, signature, offset):
            current = int.from_bytes(out[at : at + 2], "little")
            out[at : at + 2] = ((current | value) if mask else value).to_bytes(2, "little")
    return bytes(out)


def stored_inputs() -> list[str]:
    try:
        folders, _ = default_storage.listdir("batches")
    except FileNotFoundError:
        return []
    return [f"{folder}/{name}" for folder in folders for name in default_storage.listdir(f"batches/{folder}")[1]]


def refused(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()["error"]
    assert body["code"] == code, body
    assert not Batch.objects.exists() and stored_inputs() == []
    return body


def test_a_zip_bomb_is_refused_from_its_ratio_without_inflating(serve_detector):
    serve_detector(0)
    bomb = archive({"big.png": b"\0" * (200 * 1024 * 1024)})
    assert len(bomb) < 512 * 1024
    tracemalloc.start()
    response = post({"bomb.zip": bomb})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    body = refused(response, 413, "batch_too_large")
    assert "fold" in body["message"]
    assert peak < 20 * 1024 * 1024, f"{peak} bytes allocated for a {len(bomb)}-byte zip"


def test_an_entry_larger_than_it_declares_is_cut_off(serve_detector, settings):
    serve_detector(0)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    big = archive({"big.png": PHOTO + b"\x11" * (100 * 1024)}, method=zipfile.ZIP_STORED)
    refused(post({"big.zip": big}), 413, "batch_too_large")


def test_too_many_entries_are_refused_from_the_last_record(serve_detector):
    serve_detector(0)
    crowded = archive({f"e{index}.txt": b"" for index in range(serving_batches.MAX_ZIP_ENTRIES + 1)})
    assert serving_batches.zip_entry_count(io.BytesIO(crowded)) == serving_batches.MAX_ZIP_ENTRIES + 1
    body = refused(post({"crowded.zip": crowded}), 413, "batch_too_large")
    assert "entries" in body["message"]


def test_encrypted_unsupported_and_corrupt_entries_get_400(serve_detector):
    serve_detector(0)
    stored = archive({"a.png": PHOTO}, method=zipfile.ZIP_STORED)
    encrypted = patched(stored, (6, 8), 0x1, mask=True)  # flag bit 0: encrypted
    body = refused(post({"secret.zip": encrypted}), 400, "invalid_archive")
    assert "encrypted" in body["message"]
    body = refused(post({"odd.zip": patched(stored, (8, 10), 99)}), 400, "invalid_archive")
    assert "method 99" in body["message"]

    corrupt = bytearray(stored)
    data_at = corrupt.index(PHOTO[:16])
    corrupt[data_at + 20] ^= 0xFF  # one flipped byte: the CRC no longer matches
    body = refused(post({"corrupt.zip": bytes(corrupt)}), 400, "invalid_archive")
    assert "cannot be read" in body["message"]


def _offsets(data: bytearray, signature: bytes, field: int) -> list[int]:
    found, start = [], 0
    while (at := data.find(signature, start)) >= 0:
        found.append(at + field)
        start = at + 4
    return found


def test_plain_files_are_type_checked_like_single_uploads(serve_detector):
    serve_detector(0)
    refused(post({"notes.png": b"%!PS-Adobe-3.0 EPSF-3.0\n"}), 400, "invalid_image")
    eps_as_png = image_bytes(synthetic_photo(16, 16), fmt="EPS") if _can_write_eps() else b"%!PS-Adobe-3.0 EPSF\n"
    refused(post({"vector.png": eps_as_png}), 400, "invalid_image")


def _can_write_eps() -> bool:
    try:
        image_bytes(synthetic_photo(4, 4), fmt="EPS")
    except Exception:  # noqa: BLE001  (Pillow writes EPS without Ghostscript; if not, the header alone serves)
        return False
    return True


def test_long_names_fit_and_inputs_get_our_suffix(serve_detector):
    serve_detector(0)
    name = "n" * 300 + ".png"
    response = post({"long.zip": archive({name: PHOTO, "photo.exe.jpg": PHOTO})})
    assert response.status_code == 202, response.content
    batch = Batch.objects.get()
    filenames = [item["filename"] for item in batch.inputs]
    assert len(filenames[0]) <= 255 and filenames[0].endswith("~.png")
    assert {item["path"].rsplit(".", 1)[1] for item in batch.inputs} == {"png"}  # the bytes are PNG
    done = batches.run_batch(str(batch.pk))
    assert done.status == "succeeded" and done.processed == 2, done.errors
    assert stored_inputs() == []


def test_anything_that_stops_a_batch_fails_it_with_the_reason(serve_detector):
    serve_detector(0)
    assert post({"a.png": PHOTO}).status_code == 202
    batch = Batch.objects.get()
    Batch.objects.filter(pk=batch.pk).update(inputs=[{"filename": "a.png"}])  # an entry without its path
    done = batches.run_batch(str(batch.pk))
    assert done.status == "failed" and done.error.startswith("internal_error: KeyError")


def test_the_reaper_resends_lost_batches_and_fails_abandoned_ones(serve_detector, eager):
    serve_detector(0)
    assert post({"a.png": PHOTO, "b.png": PHOTO}).status_code == 202  # eager: already ran
    lost = Batch.objects.create(model_name=Batch.objects.get().model_name, conf=0.25, iou=0.7, max_det=10,
                                created_at=timezone.now() - timedelta(minutes=20))  # fmt: skip
    stalled = Batch.objects.create(model_name=lost.model_name, conf=0.25, iou=0.7, max_det=10, status="running",
                                   started_at=timezone.now() - timedelta(hours=7))  # fmt: skip
    abandoned = Batch.objects.create(model_name=lost.model_name, conf=0.25, iou=0.7, max_det=10,
                                     created_at=timezone.now() - timedelta(hours=3))  # fmt: skip
    assert batches.reap_stale_batches() == {"resent": 1, "failed": 2}
    lost.refresh_from_db()
    stalled.refresh_from_db()
    abandoned.refresh_from_db()
    assert lost.status == "succeeded"  # sent again, and run (eagerly) from the start
    assert stalled.status == "failed" and "stalled" in stalled.error
    assert abandoned.status == "failed" and "lost" in abandoned.error

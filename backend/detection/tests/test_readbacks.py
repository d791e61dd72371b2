"""Pictures read back are throttled, cached (asking again does not decode the original), and drawn
at a size people look at."""

from __future__ import annotations

import io
import uuid

import pytest
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from backend.detection.models import Detection
from tests.support import image_bytes, synthetic_photo

pytestmark = [pytest.mark.django_db(transaction=True)]  # the serving holder loads on its own connection


def detected(width: int = 96, height: int = 64) -> Detection:
    upload = SimpleUploadedFile("p.png", image_bytes(synthetic_photo(width, height)))
    response = APIClient().post("/api/v1/detections/", {"image": upload})
    assert response.status_code == 201, response.content
    return Detection.objects.get(pk=response.json()["id"])


def test_a_picture_asked_again_comes_from_the_cache(serve_detector):
    serve_detector(0)
    detection = detected()
    client = APIClient()
    url = f"/api/v1/detections/{detection.pk}/"
    first = client.get(f"{url}annotated.png")
    assert first.status_code == 200 and first["Content-Type"] == "image/png"
    default_storage.delete(detection.image.name)  # the original is gone: only a cached picture can answer
    again = client.get(f"{url}annotated.png")
    assert again.status_code == 200 and again.content == first.content
    assert client.get(f"{url}heatmap.png").status_code == 410  # never drawn: needs the original
    cache.clear()
    assert client.get(f"{url}annotated.png").status_code == 410


def test_large_originals_are_drawn_at_display_size(serve_detector):
    serve_detector(0)
    detection = detected(3000, 1500)
    png = APIClient().get(f"/api/v1/detections/{detection.pk}/annotated.png").content
    assert Image.open(io.BytesIO(png)).size == (2048, 1024)


def test_pictures_are_throttled_per_caller(serve_detector, settings):
    serve_detector(0)
    detection = detected()
    settings.API_READBACK_RATE = "2/day"
    client = APIClient(REMOTE_ADDR=f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}")
    statuses = [client.get(f"/api/v1/detections/{detection.pk}/thumbnail.jpg").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]

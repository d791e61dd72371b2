"""The stored upload read back, as a thumbnail (made from the stored image and kept the first time)."""

from __future__ import annotations

from pathlib import PurePath

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from backend.classification.models import Classification
from backend.serving.uploads import decode_upload, thumbnail_jpeg
from mlops.exceptions import MlopsError


class ImageGone(MlopsError):
    """The stored image was deleted (the classification row is still there)."""

    code = "image_deleted"
    status = 410


def thumbnail_bytes(classification: Classification) -> bytes:
    """A small JPEG of the image as the model saw it (longest side 320 px); 410 once the image is gone."""
    if not classification.has_image:
        raise ImageGone("The image of this classification was deleted by the retention policy.")
    if classification.thumbnail:
        try:
            with default_storage.open(classification.thumbnail.name, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            pass  # made again below
    try:
        with default_storage.open(classification.image.name, "rb") as handle:
            data = thumbnail_jpeg(decode_upload(handle.read()))
    except FileNotFoundError as exc:
        raise ImageGone("The image of this classification is no longer stored.") from exc
    folder = PurePath(classification.image.name).parent.relative_to("classifications")
    name = default_storage.save(f"thumbnails/classifications/{folder}/{classification.pk.hex}.jpg", ContentFile(data))
    # Conditional: with two first requests at once, one name is kept and the other file removed.
    kept = Classification.objects.filter(
        pk=classification.pk, image_deleted_at__isnull=True, thumbnail=classification.thumbnail.name
    )
    if kept.update(thumbnail=name):
        classification.thumbnail.name = name
    else:
        default_storage.delete(name)
    return data

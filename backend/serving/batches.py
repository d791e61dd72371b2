"""Batches of images, for every image kind: the upload unpacked and checked, the inputs stored, a
Celery task running them one by one, and the reaper for what the broker lost.

The upload is unpacked and checked in the request (count and size caps, images only, zip bombs and
encrypted or unreadable entries refused before anything is stored), the inputs are stored under
MEDIA_ROOT/batches/<id>/, and the kind's task runs them through the same function as single
uploads (`BatchKind.predict`). The task resumes where it stopped if the broker delivers it again
(inputs already done are skipped) and deletes the inputs when it finishes.
"""

from __future__ import annotations

import csv
import io
import logging
import struct
import zipfile
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import PurePosixPath

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from backend.core.queue import QueueUnavailable, send_task
from backend.core.services import record_prediction_error
from backend.registry.models import RegisteredModel
from backend.serving.models import PredictionBatch
from backend.serving.services import Requester
from mlops.exceptions import InputTooLarge, InvalidInput, MlopsError, ModelUnavailable
from mlops.inference.images import image_format

logger = logging.getLogger(__name__)

MAX_BATCH_IMAGES = 500
MAX_BATCH_BYTES = 512 * 1024 * 1024  # uncompressed, all images together
MAX_ZIP_ENTRIES = 2000  # every entry, images or not, read from the zip's last record before parsing it
MAX_COMPRESSION_RATIO = 100  # JPEG and PNG barely shrink; an entry that inflates more is a bomb
MAX_NAME = 255
ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


def _is_image_name(name: str) -> bool:
    path = PurePosixPath(name)
    hidden = any(part.startswith(".") or part == "__MACOSX" for part in path.parts)
    return not hidden and path.suffix.lower() in IMAGE_SUFFIXES


def _fitting(name: str) -> str:
    """A name that fits the rows (255 characters), its end and suffix kept."""
    if len(name) <= MAX_NAME:
        return name
    path = PurePosixPath(name)
    return f"{path.stem[: MAX_NAME - len(path.suffix) - 1]}~{path.suffix}"


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = _fitting(name), 2
    while candidate in taken:
        path = PurePosixPath(_fitting(name))
        candidate = str(path.with_name(f"{path.stem} ({number}){path.suffix}"))
        number += 1
    taken.add(candidate)
    return candidate


def _too_large(message: str) -> InputTooLarge:
    return InputTooLarge(message, code="batch_too_large", details={"field": "files"})


def _bad_archive(name: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{name}: {problem}", code="invalid_archive", details={"field": "files", "problem": problem})


def zip_entry_count(upload) -> int | None:
    """The entry count from a zip's end-of-central-directory record, read before anything else of it
    (None: no such record). A ZIP64 archive's 0xFFFF marker counts as too many."""
    upload.seek(0, 2)
    size = upload.tell()
    upload.seek(max(0, size - 65557))  # the record (22 bytes) plus the longest comment
    tail = upload.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    (entries,) = struct.unpack("<H", tail[at + 10 : at + 12])
    return entries


class _Limits:
    """The caps of one batch, counted as its images are read: count, total bytes, bytes per image."""

    def __init__(self):
        self.count = 0
        self.total = 0
        self.per_image = settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    def take(self, name: str, size: int) -> None:
        self.count += 1
        if self.count > MAX_BATCH_IMAGES:
            raise _too_large(f"A batch holds at most {MAX_BATCH_IMAGES} images.")
        if size > self.per_image:
            raise _too_large(f"{name} is {size} bytes; an image may be at most {self.per_image} bytes.")
        self.total += size
        if self.total > MAX_BATCH_BYTES:
            raise _too_large(f"A batch holds at most {MAX_BATCH_BYTES} bytes of images.")


def images(uploads) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every image in the uploads, one at a time (zips unpacked entry by entry), within
    the caps: memory holds one image, never the batch."""
    limits = _Limits()
    for upload in uploads:
        name = upload.name or "upload"
        upload.seek(0)
        if name.lower().endswith(".zip") or zipfile.is_zipfile(upload):
            yield from _zip_images(upload, name, limits)
            continue
        upload.seek(0)
        limits.take(name, upload.size or 0)
        data = upload.read(limits.per_image + 1)
        try:
            image_format(data)
        except InvalidInput as exc:
            raise InvalidInput(
                f"{name} is not an image we take ({exc.message})", code="invalid_image", details={"field": "files"}
            ) from exc
        yield PurePosixPath(name).name, data


def _zip_images(upload, name: str, limits: _Limits) -> Iterator[tuple[str, bytes]]:
    entries = zip_entry_count(upload)
    if entries is not None and entries > MAX_ZIP_ENTRIES:
        raise _too_large(f"{name} has {entries} entries; a batch zip may have at most {MAX_ZIP_ENTRIES}.")
    upload.seek(0)
    try:
        archive = zipfile.ZipFile(upload)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError) as exc:
        raise InvalidInput(f"{name} is not a readable zip file.", code="invalid_archive") from exc
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir() and _is_image_name(m.filename)]
        # Declared sizes and ratios first: a zip bomb is refused before anything is inflated.
        if sum(member.file_size for member in members) > MAX_BATCH_BYTES:
            raise _too_large(f"{name} unpacks to more than {MAX_BATCH_BYTES} bytes of images.")
        for member in members:
            _check_member(name, member)
        for member in members:
            limits.take(member.filename, member.file_size)
            yield member.filename, _read_member(archive, member, name, limits.per_image)


def _check_member(name: str, member: zipfile.ZipInfo) -> None:
    entry = f"{name}/{member.filename}"
    if member.flag_bits & 0x1:
        raise _bad_archive(entry, "the entry is encrypted")
    if member.compress_type not in ZIP_METHODS:
        raise _bad_archive(entry, f"compression method {member.compress_type} is not supported")
    if member.compress_size and member.file_size / member.compress_size > MAX_COMPRESSION_RATIO:
        raise _too_large(
            f"{entry} inflates {member.file_size // member.compress_size}-fold; images do not compress beyond "
            f"{MAX_COMPRESSION_RATIO}x (a zip bomb?)."
        )


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, name: str, cap: int) -> bytes:
    """The entry's bytes, read at most to the cap (a declared size may lie) and CRC-checked."""
    entry = f"{name}/{member.filename}"
    try:
        with archive.open(member) as stream:
            data = stream.read(cap + 1)
            if len(data) > cap or len(data) > member.file_size:
                raise _too_large(f"{entry} holds more than it declares or than an image may be ({cap} bytes).")
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise _bad_archive(entry, f"the entry cannot be read ({exc})") from exc
    return data


def _stored_suffix(data: bytes) -> str:
    """Our suffix for a stored input, from what its bytes are, never from the client's name."""
    try:
        return f".{image_format(data).lower()}"
    except InvalidInput:
        return ".bin"  # not an image: its detection fails with the reason when the batch runs


# A pending batch whose message never reached a worker is sent again after this long, and failed
# after STALE_PENDING x 8; a running one whose worker vanished (the broker redelivers it after its
# visibility timeout) is failed after STALE_RUNNING.
STALE_PENDING = timedelta(minutes=15)
STALE_RUNNING = timedelta(hours=6)


class BatchKind:
    """One kind's batches: its rows, its task, and how one stored image is predicted and logged.

    Subclasses set `kind` (the RegisteredModel kind and the prefix of log lines and error counts),
    `noun`, `batch_model`, `task` (the Celery task that calls `run`) and write `predict` and `done`.
    """

    kind = ""
    noun = ""  # "a detector"
    batch_model: type[PredictionBatch]
    task = ""
    # The CSV's columns after the image's (CSV_LEAD) and before "error", one set per listed item.
    csv_item_columns: tuple[str, ...] = ()

    def predict(self, batch: PredictionBatch, data: bytes, filename: str, requester: Requester) -> None:
        """Predict and log one image of the batch (raises MlopsError for a bad one)."""
        raise NotImplementedError

    def done(self, batch: PredictionBatch) -> set[str]:
        """The filenames of the batch that already have their prediction row."""
        raise NotImplementedError

    def predictions(self, batch: PredictionBatch) -> dict:
        """The batch's prediction rows (their versions loaded) by filename."""
        raise NotImplementedError

    def answer(self, row) -> dict:
        """What one prediction row answered, as the batch results show it."""
        raise NotImplementedError

    def csv_items(self, result: dict) -> list[dict]:
        """The CSV rows of one done result, in csv_item_columns (none: the image gets one row)."""
        raise NotImplementedError

    # -- the results -----------------------------------------------------------------------------
    def results(self, batch: PredictionBatch) -> list[dict]:
        """One entry per input, in upload order: its prediction, or its error, or still pending."""
        rows = self.predictions(batch)
        errors = {error["filename"]: error for error in batch.errors}
        results = []
        for item in batch.inputs:
            name = item["filename"]
            if name in rows:
                row = rows[name]
                results.append(
                    {
                        "filename": name,
                        "status": "done",
                        f"{self.kind}_id": str(row.pk),
                        "model": row.model_version.ref(),
                        "image": {"width": row.width, "height": row.height},
                        **self.answer(row),
                        "latency_ms": row.latency_ms,
                    }
                )
            elif name in errors:
                error = errors[name]
                failed = {"code": error["code"], "message": error["message"]}
                results.append({"filename": name, "status": "failed", "error": failed})
            else:
                results.append({"filename": name, "status": "pending"})
        return results

    def results_csv(self, batch: PredictionBatch) -> str:
        """The results as CSV: one row per listed item of a done image, one row for any other image."""
        buffer = io.StringIO()
        columns = ["filename", "status", f"{self.kind}_id", *CSV_LEAD, *self.csv_item_columns, "error"]
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        for result in self.results(batch):
            row = {"filename": csv_safe(result["filename"]), "status": result["status"]}
            if result["status"] == "failed":
                writer.writerow({**row, "error": csv_safe(f"{result['error']['code']}: {result['error']['message']}")})
                continue
            if result["status"] != "done":
                writer.writerow(row)
                continue
            model, image = result["model"], result["image"]
            row.update(
                {f"{self.kind}_id": result[f"{self.kind}_id"], "model": model["name"], "version": model["version"]},
                label=model["label"],
                width=image["width"],
                height=image["height"],
            )
            for item in self.csv_items(result) or [{}]:
                writer.writerow({**row, **item})
        return buffer.getvalue()

    # -- the upload ------------------------------------------------------------------------------
    def create(self, uploads, batch: PredictionBatch) -> PredictionBatch:
        """Store the images of `uploads` and the (unsaved) `batch` row, then enqueue its task; a refused
        upload leaves nothing behind."""
        model = RegisteredModel.objects.named(batch.model_name)
        if model.kind != self.kind:
            message = f"{batch.model_name!r} is a {model.kind} model, not {self.noun}."
            raise InvalidInput(message, code="wrong_model_kind")
        batch.input_dir = f"batches/{batch.id.hex}"
        taken: set[str] = set()
        written: list[str] = []
        try:
            for index, (name, data) in enumerate(images(uploads)):
                filename = _unique(name, taken)
                path = default_storage.save(f"{batch.input_dir}/{index:05d}{_stored_suffix(data)}", ContentFile(data))
                written.append(path)
                batch.inputs.append({"filename": filename, "path": path})
            if not batch.inputs:
                raise InvalidInput(
                    "The upload holds no images (accepted: a zip of images, or image files).",
                    code="no_images",
                    details={"field": "files", "accepted": sorted(IMAGE_SUFFIXES)},
                )
            batch.total = len(batch.inputs)
            batch.save(force_insert=True)
        except BaseException:
            for path in written:
                default_storage.delete(path)
            raise
        rows = self.batch_model.objects.filter(pk=batch.pk)
        try:
            result = send_task(self.task, kwargs={"batch_id": str(batch.id)})
        except Exception as exc:
            logger.exception("%s.batch_not_queued batch=%s", self.kind, batch.pk)
            failed = {"status": PredictionBatch.Status.FAILED, "finished_at": timezone.now()}
            rows.update(error=f"could not be queued: {exc}", **failed)
            self._delete_inputs(batch)
            raise QueueUnavailable("The task queue does not answer; try again later.") from exc
        rows.update(task_id=result.id or "")
        batch.task_id = result.id or ""
        logger.info("%s.batch_created batch=%s images=%d model=%s", self.kind, batch.pk, batch.total, batch.model_name)
        return batch

    # -- the task --------------------------------------------------------------------------------
    def run(self, batch_id: str) -> PredictionBatch:
        """Predict every input of the batch not done yet; it ends succeeded (per-image errors kept) or failed."""
        Status = PredictionBatch.Status
        rows = self.batch_model.objects.filter(pk=batch_id)
        claimed = rows.filter(status__in=[Status.PENDING, Status.RUNNING]).update(
            status=Status.RUNNING, started_at=timezone.now()
        )
        batch = rows.get()
        if not claimed:
            logger.info("%s.batch_skipped batch=%s status=%s", self.kind, batch_id, batch.status)
            return batch
        requester = Requester(user=batch.user, session_key=batch.session_key)
        done = self.done(batch) | {e["filename"] for e in batch.errors}
        errors = list(batch.errors)
        processed = len(done)
        try:
            for item in batch.inputs:
                if item["filename"] in done:
                    continue
                failed = self._run_one(batch, item, requester)
                if failed is not None:
                    errors.append(failed)
                processed += 1
                rows.update(processed=processed, failed=len(errors), errors=errors)
        except ModelUnavailable as exc:
            record_prediction_error(batch.model_name, self.kind, exc.code)
            self._fail(batch, f"{exc.code}: {exc.message}")
        except Exception as exc:
            # Whatever else stops the batch ends it, with the reason, rather than leaving it running.
            logger.exception("%s.batch_crashed batch=%s", self.kind, batch.pk)
            self._fail(batch, f"internal_error: {type(exc).__name__}: {exc}"[:2000])
        else:
            rows.update(status=Status.SUCCEEDED, finished_at=timezone.now())
            logger.info("%s.batch_done batch=%s images=%d failed=%d", self.kind, batch.pk, batch.total, len(errors))
        self._delete_inputs(batch)
        batch.refresh_from_db()
        return batch

    def _run_one(self, batch: PredictionBatch, item: dict, requester: Requester) -> dict | None:
        try:
            with default_storage.open(item["path"], "rb") as handle:
                data = handle.read()
            self.predict(batch, data, item["filename"], requester)
        except ModelUnavailable:
            raise
        except MlopsError as exc:
            failed = {"filename": item["filename"], "code": exc.code, "message": exc.message}
        except FileNotFoundError:
            failed = {"filename": item["filename"], "code": "input_missing", "message": "The stored input is gone."}
        else:
            return None
        record_prediction_error(batch.model_name, self.kind, failed["code"])
        return failed

    def _fail(self, batch: PredictionBatch, reason: str) -> None:
        self.batch_model.objects.filter(pk=batch.pk).exclude(status=PredictionBatch.Status.SUCCEEDED).update(
            status=PredictionBatch.Status.FAILED, error=reason, finished_at=timezone.now()
        )
        logger.warning("%s.batch_failed batch=%s error=%s", self.kind, batch.pk, reason)

    def _delete_inputs(self, batch: PredictionBatch) -> None:
        for item in batch.inputs:
            if item.get("path"):
                default_storage.delete(item["path"])

    # -- the reaper ------------------------------------------------------------------------------
    def reap(self, *, now=None) -> dict[str, int]:
        """The batch reaper (beat): re-send lost pending batches, fail the ones nothing will finish."""
        Status = PredictionBatch.Status
        now = now or timezone.now()
        outcome = {"resent": 0, "failed": 0}
        pending = self.batch_model.objects.filter(status=Status.PENDING, created_at__lt=now - STALE_PENDING)
        for batch in pending:
            if batch.created_at < now - STALE_PENDING * 8:
                self._fail(batch, "lost: no worker took it")
                self._delete_inputs(batch)
                outcome["failed"] += 1
                continue
            try:
                send_task(self.task, kwargs={"batch_id": str(batch.pk)})
                outcome["resent"] += 1
            except Exception:  # the broker is still down: the next run tries again
                logger.warning("%s.batch_resend_failed batch=%s", self.kind, batch.pk, exc_info=True)
        stalled = self.batch_model.objects.filter(status=Status.RUNNING, started_at__lt=now - STALE_RUNNING)
        for batch in stalled:
            self._fail(batch, f"stalled: running for more than {STALE_RUNNING} without finishing")
            self._delete_inputs(batch)
            outcome["failed"] += 1
        if any(outcome.values()):
            logger.info("%s.batches_reaped %s", self.kind, outcome)
        return outcome


CSV_LEAD = ("model", "version", "label", "width", "height")  # after filename, status and the row's id


def csv_safe(text: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas: quote them."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text

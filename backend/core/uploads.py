"""Request bodies are capped from their Content-Length, before Django reads (and spools to disk) a
byte of them: a 3 GB upload is answered 413 at once instead of being written to the temporary
folder first.

Batch uploads (many images, or a zip) may be as large as a batch holds (BATCH_UPLOAD_MAX_BYTES);
every other request as large as one image (UPLOAD_MAX_BYTES) plus room for the form around it. A
body without a Content-Length (chunked) is not read by Django at all.
"""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse

from backend.core.errors import error_body

FORM_ROOM = 1024 * 1024  # multipart boundaries, headers and the other fields around a file
BATCH_PATHS = ("/api/v1/batches/", "/api/v1/classifications/batches/")


def body_cap(path: str) -> int:
    if path.startswith(BATCH_PATHS):
        return settings.BATCH_UPLOAD_MAX_BYTES + FORM_ROOM
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE + FORM_ROOM


class RequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            return JsonResponse(error_body("bad_request", f"Content-Length {raw[:40]!r} is not a number."), status=400)
        cap = body_cap(request.path)
        if length > cap:
            message = f"The request body is {length} bytes; this address takes at most {cap}."
            response = JsonResponse(error_body("request_too_large", message, details={"limit": cap}), status=413)
            response["Connection"] = "close"  # the rest of the body is not read: the connection cannot be reused
            return response
        return self.get_response(request)

"""JSON in and out of the scoring API with orjson: a 1,000-record call is ~800 KB of JSON each way.

Only the scoring views use these (the rest of the API keeps DRF's defaults). Both fall back to DRF's
own classes wherever orjson would answer differently, so bodies and errors stay as DRF makes them.
"""

from __future__ import annotations

from io import BytesIO

import orjson
from django.conf import settings
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer


class OrjsonParser(JSONParser):
    """application/json parsed by orjson; what orjson refuses goes to DRF's parser, which either
    reads it as Python's json does (numbers beyond a double such as 1e400, integers of hundreds of
    digits: the scorer names those fields) or answers its usual parse error."""

    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read() if stream is not None else b""
        if (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET).lower().replace("-", "") == "utf8":
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
        return super().parse(BytesIO(body), media_type, parser_context)


class OrjsonRenderer(JSONRenderer):
    """application/json rendered by orjson (compact, UTF-8, like DRF's defaults); anything orjson
    cannot encode, or an indented rendering asked for, is left to DRF's renderer."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        if self.get_indent(accepted_media_type or "", renderer_context or {}) is None:
            try:
                body = orjson.dumps(data)
            except TypeError:
                body = b""
            # DRF escapes U+2028/U+2029 so that the answer is also valid JavaScript: let it do so.
            if body and "\u2028".encode() not in body and "\u2029".encode() not in body:
                return body
        return super().render(data, accepted_media_type, renderer_context)

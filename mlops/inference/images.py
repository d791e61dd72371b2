"""Decode uploaded images once and right: size caps before pixels, EXIF orientation, honest colour.

Pillow's own decompression-bomb limit lets a 10 KB PNG declaring 9000x9000 cost ~400 MB, 16-bit
images turn white when converted naively, alpha composited on black hides dark content, and
Ultralytics ignores EXIF orientation for PIL inputs. Everything that serves or monitors images goes
through `decode_image`, so every model sees the same pixels.
"""

from __future__ import annotations

import io
import logging
import math
import warnings

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from mlops.exceptions import InputTooLarge, InvalidInput

logger = logging.getLogger(__name__)

# Modes whose samples do not fit in 8 bits: scaled by their real range, never clipped.
_WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_WHITE = (255, 255, 255)
_TRANSPOSED = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height
SOURCE_SIZE = "modelyard_source_size"  # image.info key: the upright size before a reduced-scale decode


# The formats uploads may be in: Pillow opens nothing else (no EPS, which runs Ghostscript, no PSD,
# no formats added by plugins).
ACCEPTED_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP")


def image_format(data: bytes) -> str:
    """The format named by the bytes' header (one of ACCEPTED_FORMATS), without decoding a pixel."""
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
            return image.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, ImportError) as exc:
        accepted = ", ".join(ACCEPTED_FORMATS)
        raise InvalidInput(
            f"The file is not an image we read (accepted: {accepted}).",
            code="invalid_image",
            details={"problem": "unreadable", "accepted": list(ACCEPTED_FORMATS)},
        ) from exc


def decode_image(data: bytes, *, max_pixels: int, max_side: int, fit: tuple[int, int] | None = None) -> Image.Image:
    """Decode image bytes into an RGB Pillow image, refusing oversized images from their header.

    With `fit` (the height and width a model letterboxes into), a JPEG at least twice as large as
    what fits is decoded at a reduced DCT scale (1/2, 1/4 or 1/8, JPEG's own `draft`), never below
    the size the model resizes it to: a 12-megapixel photo costs a quarter of its full decode and
    of the resize after it. `source_size(image)` is then the upload's upright size, in which boxes
    are reported.

    Raises InputTooLarge (code "image_too_large") before any pixel is decoded when the declared
    size exceeds `max_pixels` or `max_side`, and InvalidInput (code "invalid_image") for bytes
    that are not a decodable image.
    """
    if not data:
        raise InvalidInput("The image is empty.", code="invalid_image", details={"problem": "empty"})
    with warnings.catch_warnings():
        # Our caps are the limit; Pillow's own bomb warning would only add noise below its error.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        except Image.DecompressionBombError as exc:
            raise InputTooLarge(str(exc), code="image_too_large", details={"problem": "decompression_bomb"}) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, ImportError) as exc:
            # ImportError: once Ultralytics is imported in the process (a worker that also trains),
            # its patched Image.open tries a HEIF plugin on unidentified bytes, absent offline.
            raise InvalidInput(
                "The file is not an image we can read.", code="invalid_image", details={"problem": "unreadable"}
            ) from exc
        check_size(image.size, max_pixels=max_pixels, max_side=max_side)
        try:
            upright = _draft(image, fit) if fit is not None and image.format == "JPEG" else None
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of an upright image
            rgb = to_rgb(image)
            if upright is not None:
                rgb.info[SOURCE_SIZE] = upright
            return rgb
        except (OSError, SyntaxError, ValueError, TypeError, EOFError) as exc:
            raise InvalidInput(
                f"The image could not be decoded: {exc}", code="invalid_image", details={"problem": "corrupt"}
            ) from exc


def source_size(image: Image.Image) -> tuple[int, int]:
    """The (width, height) of the upload `image` was decoded from: its own size unless drafted."""
    return image.info.get(SOURCE_SIZE, image.size)


def _draft(image: Image.Image, fit: tuple[int, int]) -> tuple[int, int] | None:
    """Set a JPEG to decode at the smallest DCT scale still covering what letterboxing into `fit`
    keeps; the upright size it had when the scale was reduced, None when it was not."""
    width, height = image.size
    transposed = image.getexif().get(ExifTags.Base.Orientation, 1) in _TRANSPOSED
    upright = (height, width) if transposed else (width, height)
    needed = _fitted_size(upright, fit)
    image.draft(image.mode, (needed[1], needed[0]) if transposed else needed)
    return upright if image.size != (width, height) else None


def _fitted_size(size: tuple[int, int], fit: tuple[int, int]) -> tuple[int, int]:
    """The size letterboxing `size` into `fit` (height, width) resizes it to, rounded up."""
    width, height = size
    ratio = min(fit[0] / height, fit[1] / width, 1.0)
    return max(math.ceil(width * ratio), 1), max(math.ceil(height * ratio), 1)


def check_size(size: tuple[int, int], *, max_pixels: int, max_side: int) -> None:
    """Refuse a declared (width, height) beyond our caps, before anything is decoded."""
    width, height = size
    if width <= 0 or height <= 0:
        raise InvalidInput("The image has no pixels.", code="invalid_image", details={"problem": "empty"})
    if width > max_side or height > max_side or width * height > max_pixels:
        raise InputTooLarge(
            f"The image is {width}x{height}; the limit is {max_side} pixels a side and {max_pixels} pixels in all.",
            code="image_too_large",
            details={"width": width, "height": height, "max_side": max_side, "max_pixels": max_pixels},
        )


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB without washing out or darkening the picture."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _WIDE_MODES:
        return _wide_to_rgb(image)
    if mode == "CMYK":
        return _cmyk_to_rgb(image)
    if mode == "P":
        has_alpha = "transparency" in image.info or (image.palette is not None and image.palette.mode == "RGBA")
        return _composite_on_white(image.convert("RGBA")) if has_alpha else image.convert("RGB")
    if mode in _ALPHA_MODES:
        return _composite_on_white(image.convert("RGBA"))
    if mode == "L" and "transparency" in image.info:
        return _composite_on_white(image.convert("RGBA"))
    return image.convert("RGB")


def _wide_to_rgb(image: Image.Image) -> Image.Image:
    """Scale 16/32-bit samples to 0-255 by the range actually used (a 12-bit scan stays visible)."""
    samples = np.asarray(image)
    if samples.dtype.kind == "f" and not np.isfinite(samples).all():
        samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = samples.min().item(), samples.max().item()
    if high <= low:
        # A flat image: keep its level relative to the container's range.
        full_scale = 65535.0 if image.mode.startswith("I;16") else 255.0
        level = int(np.clip(round(low / full_scale * 255.0), 0, 255))
        return Image.new("RGB", image.size, (level, level, level))
    if samples.dtype.kind == "u" and samples.dtype.itemsize == 2:
        # A lookup table keeps a 40 MP 16-bit scan at 40 MB of work memory instead of 320.
        codes = np.arange(65536, dtype=np.float32)
        table = np.clip(np.rint((codes - low) * (255.0 / (high - low))), 0, 255).astype(np.uint8)
        luma = table[samples]
    else:
        scaled = (samples.astype(np.float32) - np.float32(low)) * np.float32(255.0 / (high - low))
        luma = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(luma).convert("RGB")


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    """Use the embedded ICC profile when there is one; Pillow's naive formula otherwise."""
    icc = image.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms
        except ImportError:  # Pillow built without littlecms
            return image.convert("RGB")
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (OSError, ValueError, ImageCms.PyCMSError) as exc:
            logger.info("image.cmyk_profile_ignored error=%s", exc)
    return image.convert("RGB")


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    """Transparent pixels become white, as a browser shows them, not black."""
    background = Image.new("RGB", rgba.size, _WHITE)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background

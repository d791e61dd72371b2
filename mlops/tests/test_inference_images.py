"""Image decoding: caps from the header, EXIF orientation, and every colour mode converted honestly."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from mlops.exceptions import InputTooLarge, InvalidInput
from mlops.inference.images import decode_image, image_format, source_size

CAPS = {"max_pixels": 40_000_000, "max_side": 12_000}


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def bomb_png(side: int = 9000) -> bytes:
    """A valid grayscale PNG of side x side zeros: ~80 KB on disk, 81 MB (x4 once converted) decoded."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def test_rgb_jpeg_decodes_to_rgb():
    source = Image.new("RGB", (64, 48), (200, 100, 50))
    image = decode_image(encode(source, "JPEG", quality=95), **CAPS)
    assert image.mode == "RGB" and image.size == (64, 48)
    assert np.allclose(np.asarray(image).reshape(-1, 3).mean(axis=0), (200, 100, 50), atol=3)


def test_header_declaring_too_many_pixels_is_refused_before_decoding():
    data = bomb_png()
    assert len(data) < 200_000
    with pytest.raises(InputTooLarge) as raised:
        decode_image(data, max_pixels=40_000_000, max_side=8000)
    assert raised.value.code == "image_too_large"
    assert raised.value.details["width"] == 9000
    # The pixel cap alone refuses it too, while the side cap would let it through.
    with pytest.raises(InputTooLarge):
        decode_image(data, max_pixels=50_000_000, max_side=12_000)
    # A truncated body would fail decoding: refusing it as too large shows the check came first.
    with pytest.raises(InputTooLarge):
        decode_image(data[:200], max_pixels=1_000_000, max_side=12_000)


def test_refusing_the_bomb_costs_no_memory():
    """In a fresh process: refusing a 9000x9000 PNG keeps the peak RSS far below its 81 MB of pixels."""
    probe = f"""
import resource, sys
sys.path.insert(0, {str(__import__("pathlib").Path(__file__).resolve().parents[2])!r})
from mlops.tests.test_inference_images import bomb_png
from mlops.inference.images import decode_image, image_format, source_size
from mlops.exceptions import InputTooLarge
data = bomb_png()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    decode_image(data, max_pixels=1_000_000, max_side=12_000)
except InputTooLarge:
    pass
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    grown_mb = int(result.stdout.strip())
    assert grown_mb < 20, f"refusing the bomb grew the process by {grown_mb} MB"


def test_long_side_cap():
    thin = encode(Image.new("L", (5000, 2)))
    with pytest.raises(InputTooLarge) as raised:
        decode_image(thin, max_pixels=40_000_000, max_side=4096)
    assert raised.value.status == 413


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", encode(Image.new("RGB", (32, 32)), "PNG")[:60]],
    ids=["empty", "text", "truncated-png"],
)
def test_undecodable_bytes_are_invalid_image(data):
    with pytest.raises(InvalidInput) as raised:
        decode_image(data, **CAPS)
    assert raised.value.code == "invalid_image"
    assert not isinstance(raised.value, InputTooLarge)


def test_exif_orientation_is_applied():
    # A 40x20 picture, left half red and right half blue, stored with "rotate 90 CW to display" (6).
    source = np.zeros((20, 40, 3), dtype=np.uint8)
    source[:, :20] = (255, 0, 0)
    source[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.fromarray(source), "JPEG", quality=95, exif=exif.tobytes())
    image = decode_image(data, **CAPS)
    assert image.size == (20, 40)
    pixels = np.asarray(image).astype(int)
    # Rotated 90 degrees clockwise: the red left half is now on top.
    assert pixels[5, 10, 0] > 200 and pixels[5, 10, 2] < 60
    assert pixels[35, 10, 2] > 200 and pixels[35, 10, 0] < 60


def photo(width: int, height: int) -> Image.Image:
    """A smooth colour picture (gradients and a red square a fifth of the way in) of any size."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    pixels = np.stack(np.broadcast_arrays(x, y, (x + y) / 2), axis=-1).astype(np.uint8)
    pixels[height // 5 : 2 * height // 5, width // 5 : 2 * width // 5] = (230, 20, 20)
    return Image.fromarray(pixels)


def test_a_jpeg_far_larger_than_the_model_input_is_decoded_at_a_reduced_scale():
    data = encode(photo(4000, 3000), "JPEG", quality=90)
    full = decode_image(data, **CAPS)
    reduced = decode_image(data, **CAPS, fit=(640, 640))
    # 1/4 scale: the largest reduction that still covers the 640x480 the model resizes it to.
    assert full.size == source_size(full) == (4000, 3000)
    assert reduced.size == (1000, 750) and source_size(reduced) == (4000, 3000)
    assert reduced.mode == "RGB"
    same = np.asarray(full.resize((1000, 750), Image.Resampling.BOX), dtype=np.int16)
    assert np.abs(np.asarray(reduced, dtype=np.int16) - same).mean() < 2.0
    # Just below twice the fitted size in one direction: decoded in full.
    assert decode_image(encode(photo(1200, 900), "JPEG"), **CAPS, fit=(640, 640)).size == (1200, 900)


def test_reduced_decode_keeps_the_upright_size_of_a_rotated_photo():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 4000x3000, shown 3000x4000
    data = encode(photo(4000, 3000), "JPEG", quality=90, exif=exif.tobytes())
    image = decode_image(data, **CAPS, fit=(640, 640))
    assert image.size == (750, 1000) and source_size(image) == (3000, 4000)


def test_only_jpegs_are_decoded_at_a_reduced_scale():
    image = decode_image(encode(photo(2000, 1500), "PNG"), **CAPS, fit=(640, 640))
    assert image.size == source_size(image) == (2000, 1500)


def test_sixteen_bit_gradient_keeps_its_gradient():
    # A 12-bit scan in a 16-bit container: values 0..4095. Naive conversion clips it to white.
    ramp = np.tile(np.linspace(0, 4095, 256).astype(np.uint16), (16, 1))
    source = Image.fromarray(ramp)
    assert source.mode == "I;16"
    naive = np.asarray(source.convert("RGB"))
    assert (naive[:, 64:] == 255).all(), "the naive conversion is expected to wash this image out"
    image = decode_image(encode(source), **CAPS)
    pixels = np.asarray(image)
    assert image.mode == "RGB"
    row = pixels[8, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert (np.diff(row) >= 0).all() and len(np.unique(row)) > 200
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()


def test_32_bit_integer_image_is_scaled_by_its_range():
    values = np.tile(np.arange(-1000, 1000, 20, dtype=np.int32), (4, 1))
    source = Image.fromarray(values, mode="I")
    image = decode_image(encode(source, "TIFF"), **CAPS)
    row = np.asarray(image)[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and (np.diff(row) >= 0).all()


def test_flat_sixteen_bit_image_keeps_its_level():
    source = Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16))
    pixels = np.asarray(decode_image(encode(source), **CAPS))
    assert abs(int(pixels.mean()) - 128) <= 1


def test_cmyk_converts_to_rgb():
    source = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    image = decode_image(encode(source, "JPEG", quality=95), **CAPS)
    red, green, blue = np.asarray(image).reshape(-1, 3).mean(axis=0)
    assert image.mode == "RGB"
    assert red > 200 and green < 60 and blue < 60


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_images(transparent):
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[:, :4] = (0, 128, 0)
    rgb[:, 4:] = (10, 10, 10)
    source = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    params = {}
    if transparent:
        dark_index = source.getpixel((6, 6))
        params["transparency"] = dark_index
    image = decode_image(encode(source, **params), **CAPS)
    pixels = np.asarray(image).astype(int)
    assert image.mode == "RGB"
    assert tuple(pixels[2, 2]) == (0, 128, 0)
    # A transparent palette entry shows as white; an opaque one keeps its colour.
    assert tuple(pixels[6, 6]) == ((255, 255, 255) if transparent else (10, 10, 10))


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_white(mode):
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., :3] = 40  # dark content
    rgba[:, :4, 3] = 255  # left half opaque
    rgba[:, 4:, 3] = 0  # right half fully transparent
    rgba[0, :, 3] = 128  # first row half transparent
    source = Image.fromarray(rgba, "RGBA").convert(mode)
    pixels = np.asarray(decode_image(encode(source), **CAPS)).astype(int)
    assert (pixels[2:, :4] == 40).all()
    assert (pixels[2:, 4:] == 255).all(), "transparent pixels must be white, not black"
    assert (abs(pixels[0, 0] - (40 * 128 + 255 * 127) / 255) <= 2).all()


@pytest.mark.parametrize("mode", ["L", "1"])
def test_grayscale_becomes_three_equal_channels(mode):
    gray = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (8, 1))
    source = Image.fromarray(gray).convert(mode)
    pixels = np.asarray(decode_image(encode(source), **CAPS))
    assert pixels.shape == (8, 32, 3)
    assert (pixels[..., 0] == pixels[..., 2]).all()
    if mode == "L":
        assert (pixels[..., 0] == gray).all()


@pytest.mark.parametrize("fmt", ["EPS", "PPM", "ICO"])
def test_only_the_formats_we_take_are_opened(fmt):
    """Pillow reads these (EPS by running Ghostscript); uploads in them are refused, not opened."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, format=fmt)
    with pytest.raises(InvalidInput) as raised:
        decode_image(buffer.getvalue(), max_pixels=10_000, max_side=100)
    assert raised.value.code == "invalid_image"
    assert image_format(_png()) == "PNG"


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    return buffer.getvalue()

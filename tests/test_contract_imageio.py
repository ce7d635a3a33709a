"""Decoding held to values computed here: format sniffing, exact grey values, 16-bit and DICOM
windowing by the standard's formula, pixel limits at exactly the limit, truncation refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_dicom import write_dicom

from edge.core.errors import ImageReadError
from edge.core.imageio import decode_bytes, is_supported_path, read_image, sniff


def png_bytes(a: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a, mode).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def jpeg(fracatlas: Path) -> bytes:
    for p in sorted((fracatlas / "test" / "fractured").glob("*.jpg")):
        data = p.read_bytes()
        if data.endswith(b"\xff\xd9"):
            return data
    pytest.fail("no complete JPEG in the FracAtlas test split")


def test_sniff_reads_the_content_not_the_name():
    assert sniff(b"\xff\xd8\xff\xe0rest") == "jpeg"
    assert sniff(b"\x89PNG\r\n\x1a\n....") == "png"
    assert sniff(b"\0" * 128 + b"DICM") == "dicom"
    assert sniff(b"\0" * 127 + b"DICM") is None
    assert sniff(b"BM....") == "bmp"
    assert sniff(b"II*\x00...") == "tiff" and sniff(b"MM\x00*...") == "tiff"
    assert sniff(b"\xff\xd8\x00") is None and sniff(b"GIF89a") is None
    assert is_supported_path(Path("a/B.DCM")) and is_supported_path(Path("x.Jpeg")) and not is_supported_path(Path("x.gif"))


def test_a_directory_is_a_named_read_error(tmp_path):
    with pytest.raises(ImageReadError, match="is a directory") as e:
        read_image(tmp_path)
    assert e.value.path == str(tmp_path)


def test_empty_unknown_and_missing_are_named_errors(tmp_path):
    with pytest.raises(ImageReadError, match="^up.png: empty file"):
        decode_bytes(b"", name="up.png")
    with pytest.raises(ImageReadError, match="^x.bin: not a PNG, JPEG, WebP or DICOM"):
        decode_bytes(b"hello world", name="x.bin")
    with pytest.raises(ImageReadError, match="^.*nope.jpg: file not found$") as e:
        read_image(tmp_path / "nope.jpg")
    assert e.value.path == str(tmp_path / "nope.jpg")


def test_grey_png_keeps_exact_values():
    a = np.arange(256, dtype=np.uint8).reshape(16, 16)
    d = decode_bytes(png_bytes(a))
    assert (d.kind, d.mode, d.frames) == ("png", "L", 1)
    np.testing.assert_array_equal(d.pixels, a)


def test_rgb_png_stays_rgb_unless_its_channels_are_equal():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 20, 30
    d = decode_bytes(png_bytes(rgb))
    assert d.pixels.shape == (2, 3, 3) and d.mode == "RGB"
    grey = np.repeat(np.arange(6, dtype=np.uint8).reshape(2, 3, 1), 3, axis=2)
    g = decode_bytes(png_bytes(grey)).pixels
    assert g.shape == (2, 3) and g.tolist() == [[0, 1, 2], [3, 4, 5]]
    almost = grey.copy()
    almost[1, 2, 2] = 99  # one blue value differs: not grey
    assert decode_bytes(png_bytes(almost)).pixels.shape == (2, 3, 3)
    almost = grey.copy()
    almost[0, 0, 1] = 99  # one green value differs
    assert decode_bytes(png_bytes(almost)).pixels.shape == (2, 3, 3)
    almost = grey.copy()
    almost[0, 1, 0] = 99  # one red value differs
    assert decode_bytes(png_bytes(almost)).pixels.shape == (2, 3, 3)


def test_palette_png_is_converted_to_rgb():
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p.putpixel((1, 0), 1)
    buf = io.BytesIO()
    p.save(buf, format="PNG")
    assert decode_bytes(buf.getvalue()).pixels.tolist() == [[[255, 0, 0], [0, 0, 255]]]


def test_sixteen_bit_png_is_stretched_min_to_max():
    a = np.array([[1000, 2000], [3000, 1000]], dtype=np.uint16)
    d = decode_bytes(png_bytes(a))
    np.testing.assert_allclose(d.pixels, [[0.0, 127.5], [255.0, 0.0]])
    flat = decode_bytes(png_bytes(np.full((2, 2), 500, np.uint16))).pixels
    assert flat.tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_32_bit_tiff_is_stretched_min_to_max():
    a = np.array([[0, 300], [600, 1200]], dtype=np.int32)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="TIFF")
    d = decode_bytes(buf.getvalue())
    assert (d.kind, d.mode) == ("tiff", "I")
    np.testing.assert_allclose(d.pixels, [[0.0, 63.75], [127.5, 255.0]])


def test_pixel_limit_holds_at_exactly_the_limit():
    data = png_bytes(np.zeros((10, 12), np.uint8))
    assert decode_bytes(data, max_pixels=120).pixels.shape == (10, 12)
    with pytest.raises(ImageReadError, match="too large") as e:
        decode_bytes(data, max_pixels=119, name="big.png")
    assert e.value.path == "big.png"


def test_truncated_jpeg_is_refused_but_zero_padding_is_not(jpeg):
    assert decode_bytes(jpeg).kind == "jpeg"
    assert decode_bytes(jpeg + b"\0\0\0").pixels.shape == decode_bytes(jpeg).pixels.shape
    with pytest.raises(ImageReadError, match="truncated"):
        decode_bytes(jpeg[: len(jpeg) // 2], name="half.jpg")
    # the scan data complete, only the end-of-image marker gone: the decoder would accept it, the check must not
    with pytest.raises(ImageReadError, match="truncated") as e:
        decode_bytes(jpeg[:-2], name="noeoi.jpg")
    assert e.value.path == "noeoi.jpg" and e.value.hint
    with pytest.raises(ImageReadError):  # only NUL padding may follow the marker
        decode_bytes(jpeg + b"XX", name="junk.jpg")


def test_half_a_jpeg_with_its_end_marker_is_refused(jpeg):
    with pytest.raises(ImageReadError):
        decode_bytes(jpeg[: len(jpeg) // 2] + b"\xff\xd9", name="half.jpg")


def test_corrupt_png_is_an_image_error():
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)  # does not compress
    data = bytearray(png_bytes(noise))
    with pytest.raises(ImageReadError, match="^cut.png: truncated or corrupt PNG") as e:
        decode_bytes(bytes(data[: len(data) // 2]), name="cut.png")
    assert e.value.path == "cut.png"
    data[len(data) // 2] ^= 0xFF  # inside the compressed pixels: a CRC or zlib failure, named as corruption
    with pytest.raises(ImageReadError, match="^bad.png: truncated or corrupt PNG") as e:
        decode_bytes(bytes(data), name="bad.png")


def window(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 linear VOI onto 0..255, written out here."""
    out = np.empty_like(x, dtype=np.float64)
    lo, hi = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    out[x <= lo] = 0.0
    out[x > hi] = 255.0
    mid = (x > lo) & (x <= hi)
    out[mid] = ((x[mid] - (c - 0.5)) / (w - 1) + 0.5) * 255.0
    return out


def test_dicom_window_by_the_standard(tmp_path):
    px = np.array([[0, 100, 200], [300, 400, 4000]], dtype=np.uint16)
    d = read_image(write_dicom(tmp_path / "w.dcm", px, window=(200, 301)))
    np.testing.assert_allclose(d.pixels, window(px.astype(float), 200, 301), atol=1e-9)
    assert d.pixels[0, 0] == 0.0 and d.pixels[1, 2] == 255.0 and 0 < d.pixels[0, 2] < 255


@pytest.mark.parametrize("width", [1.0, 1.5, 2.0, 0.5])
@pytest.mark.parametrize("center", [100.0, 100.5, 100.6])  # fractional centres put a pixel inside the ramp
def test_narrow_dicom_windows(tmp_path, width, center):
    px = np.array([[98, 99, 100, 101, 102]], dtype=np.uint16)
    d = read_image(write_dicom(tmp_path / "n.dcm", px, window=(center, width)))
    w = max(width, 1.0)
    want = np.clip(((px - (center - 0.5)) / (w - 1 if w > 1 else 1) + 0.5) * 255.0, 0, 255)
    np.testing.assert_allclose(d.pixels, want)
    assert np.isfinite(d.pixels).all()


def test_dicom_rescale_then_window(tmp_path):
    px = np.array([[0, 10], [20, 30]], dtype=np.uint16)
    d = read_image(write_dicom(tmp_path / "r.dcm", px, slope=2.0, intercept=-10.0, window=(25, 41)))
    np.testing.assert_allclose(d.pixels, window(px * 2.0 - 10.0, 25, 41), atol=1e-9)


def test_dicom_without_window_is_stretched_and_monochrome1_inverted(tmp_path):
    px = np.array([[10, 20], [30, 50]], dtype=np.uint16)
    d = read_image(write_dicom(tmp_path / "m2.dcm", px))
    np.testing.assert_allclose(d.pixels, (px - 10.0) * 255.0 / 40.0)
    assert d.mode == "MONOCHROME2" and d.kind == "dicom"
    inv = read_image(write_dicom(tmp_path / "m1.dcm", px, photometric="MONOCHROME1"))
    np.testing.assert_allclose(inv.pixels, 255.0 - (px - 10.0) * 255.0 / 40.0)


def test_dicom_frames_and_pixel_limit(tmp_path):
    px = np.stack([np.full((4, 5), v, np.uint8) for v in (10, 20, 30, 40)])
    p = write_dicom(tmp_path / "f.dcm", px, frames=4)
    data = p.read_bytes()
    assert decode_bytes(data).frames == 4
    # 4 frames of 4 x 5 = 80 pixels: accepted at exactly 80, refused at 79
    assert decode_bytes(data, max_pixels=80).pixels.shape == (4, 5)
    with pytest.raises(ImageReadError, match="too large"):
        decode_bytes(data, max_pixels=79)
    for f in (0, 3):
        got = decode_bytes(data, frame=f).pixels
        assert got.min() == got.max() == 0.0 or np.allclose(got, got.flat[0])  # one flat frame each
        assert decode_bytes(data, frame=f).frames == 4
    for bad in (-1, 4):
        with pytest.raises(ImageReadError, match="out of range"):
            decode_bytes(data, frame=bad)
    single = write_dicom(tmp_path / "s.dcm", np.zeros((3, 3), np.uint8)).read_bytes()
    assert decode_bytes(single, frame=0).pixels.shape == (3, 3)
    with pytest.raises(ImageReadError, match="out of range"):
        decode_bytes(single, frame=1)


def test_dicom_frame_choice_is_visible_with_a_window(tmp_path):
    px = np.stack([np.full((2, 2), v, np.uint16) for v in (100, 200, 300)])
    data = write_dicom(tmp_path / "fw.dcm", px, frames=3, window=(200, 161)).read_bytes()
    expect = window(np.array([100.0, 200.0, 300.0]), 200, 161)
    assert expect.tolist() == [0.0, pytest.approx((0.5 / 160 + 0.5) * 255), 255.0]
    assert decode_bytes(data).pixels[0, 0] == pytest.approx(expect[1])  # the middle frame by default
    assert decode_bytes(data, frame=0).pixels[0, 0] == expect[0]
    assert decode_bytes(data, frame=2).pixels[0, 0] == expect[2]


def test_garbage_after_the_dicom_preamble_is_an_image_error():
    with pytest.raises(ImageReadError, match="DICOM"):
        decode_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage" * 4, name="bad.dcm")

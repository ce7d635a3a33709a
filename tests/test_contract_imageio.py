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
from edge.core.limits import MB, Limits


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


def test_garbage_after_the_dicom_preamble_is_an_image_error(tmp_path):
    data = b"\0" * 128 + b"DICM" + b"\x02\x00garbage" * 4
    with pytest.raises(ImageReadError, match="DICOM") as e:
        decode_bytes(data, name="bad.dcm")
    assert e.value.line().startswith("bad.dcm: ")  # the DICOM reader is told the name
    (tmp_path / "scan.dcm").write_bytes(data)
    with pytest.raises(ImageReadError) as e:
        read_image(tmp_path / "scan.dcm")
    assert e.value.path == str(tmp_path / "scan.dcm") and e.value.line().startswith(f"{tmp_path / 'scan.dcm'}: ")


# --- sniffing, reading, naming ------------------------------------------------------------------
def test_webp_is_sniffed_by_both_of_its_magic_words():
    assert sniff(b"RIFF\x24\x00\x00\x00WEBPVP8L") == "webp"
    assert sniff(b"RIFF\x24\x00\x00\x00WAVEfmt ") is None  # a RIFF that is not WebP
    assert sniff(b"RIFX\x24\x00\x00\x00WEBPVP8L") is None
    assert sniff(b"\x00\x00\x00\x00\x24\x00\x00\x00WEBPVP8L") is None


def test_file_size_guard_holds_at_exactly_the_limit(tmp_path):
    # a file may be at most the decoded budget + 64 MB; sparse files cost no disk
    limits = Limits(max_decoded_bytes=MB)
    at = tmp_path / "at.png"
    with open(at, "wb") as f:
        f.truncate(65 * MB)
    with pytest.raises(ImageReadError, match="not a PNG, JPEG, WebP or DICOM"):  # read, then refused by content
        read_image(at, limits=limits)
    over = tmp_path / "over.png"
    with open(over, "wb") as f:
        f.truncate(65 * MB + 1)
    with pytest.raises(ImageReadError, match=r"^.*over.png: file too large \(65 MB\)$") as e:
        read_image(over, limits=limits)
    assert e.value.path == str(over)


def test_unreadable_path_is_a_named_error(tmp_path):
    f = tmp_path / "file"
    f.write_bytes(b"x")
    with pytest.raises(ImageReadError, match=r": cannot read file \(Not a directory\)$") as e:
        read_image(f / "a.png")
    assert e.value.path == str(f / "a.png")
    with pytest.raises(ImageReadError, match=r": is a directory, not an image$"):
        read_image(tmp_path)


def test_read_image_passes_its_limits_and_frame_on(tmp_path):
    p = tmp_path / "a.png"
    p.write_bytes(png_bytes(np.zeros((10, 12), np.uint8)))
    assert read_image(p, limits=Limits(max_decoded_bytes=120)).pixels.shape == (10, 12)
    with pytest.raises(ImageReadError, match="too large"):
        read_image(p, limits=Limits(max_decoded_bytes=119))
    with pytest.raises(ImageReadError, match=r"frame 1 out of range \(the file has 1\)$"):
        read_image(p, frame=1)


def test_an_upload_without_a_name_is_named_upload():
    with pytest.raises(ImageReadError) as e:
        decode_bytes(b"")
    assert e.value.path == "<upload>" and e.value.line() == "<upload>: empty file"


def test_a_raster_has_only_frame_zero():
    data = png_bytes(np.zeros((3, 4), np.uint8))
    assert decode_bytes(data, frame=0).pixels.shape == (3, 4)
    with pytest.raises(ImageReadError) as e:
        decode_bytes(data, name="one.png", frame=1)
    assert e.value.line() == "one.png: frame 1 out of range (the file has 1)"


def test_decoder_failures_outside_image_errors_are_one_line(monkeypatch):
    # fault injection: a decoder bug (any exception type) or running out of memory, as decode_bytes reports it
    import struct

    import edge.core.imageio as imageio

    def bug(*_a: object) -> None:
        raise struct.error("bad")

    monkeypatch.setattr(imageio, "_decode_raster", bug)
    with pytest.raises(ImageReadError) as e:
        decode_bytes(png_bytes(np.zeros((2, 2), np.uint8)), name="b.png")
    assert e.value.line() == "b.png: corrupt image (error)"

    def oom(*_a: object) -> None:
        raise MemoryError

    monkeypatch.setattr(imageio, "_decode_raster", oom)
    with pytest.raises(ImageReadError) as e:
        decode_bytes(png_bytes(np.zeros((2, 2), np.uint8)), name="m.png")
    assert e.value.line() == "m.png: image too large (out of memory while decoding)"


def test_pillows_own_bomb_guard_is_reported_as_too_large(monkeypatch):
    # another library in the process may switch Pillow's guard back on; it raises past 2x its limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    with pytest.raises(ImageReadError) as e:
        decode_bytes(png_bytes(np.zeros((5, 5), np.uint8)), name="g.png")
    assert e.value.line() == "g.png: image too large (decompression bomb guard)"


# --- budgets by pixel mode, at exactly the limit ----------------------------------------------------
def pil_bytes(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("mode", "fmt", "per_pixel"),
    [  # bytes a decoded pixel of each mode may cost (limits.py): as stored, or as converted to RGB
        ("1", "BMP", 1),
        ("L", "PNG", 1),
        ("L", "TIFF", 1),
        ("P", "PNG", 3),
        ("RGB", "PNG", 3),
        ("RGBA", "PNG", 4),
        ("CMYK", "TIFF", 4),
        ("I;16", "PNG", 2),
        ("F", "TIFF", 4),
        ("LAB", "TIFF", 4),  # no entry of its own: the largest cost is assumed
    ],
)
def test_raster_budget_by_mode_at_exactly_the_limit(mode, fmt, per_pixel):
    data = pil_bytes(Image.new(mode, (6, 5)), fmt)
    assert Image.open(io.BytesIO(data)).mode == mode
    assert decode_bytes(data, name="m", limits=Limits(max_decoded_bytes=30 * per_pixel)).pixels.shape[:2] == (5, 6)
    with pytest.raises(ImageReadError, match="too large"):
        decode_bytes(data, name="m", limits=Limits(max_decoded_bytes=30 * per_pixel - 1))


# --- decoding each kind to values written here ------------------------------------------------------
def test_grey_and_rgb_bmp_and_tiff_keep_exact_values():
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    rgb = np.stack([grey, 255 - grey, grey // 3], axis=-1)
    for fmt in ("BMP", "TIFF"):
        np.testing.assert_array_equal(decode_bytes(pil_bytes(Image.fromarray(grey), fmt)).pixels, grey)
        np.testing.assert_array_equal(decode_bytes(pil_bytes(Image.fromarray(rgb), fmt)).pixels, rgb)


def test_bilevel_palette_and_cmyk_tiff_are_converted():
    bits = np.array([[0, 1, 1], [1, 0, 0]], bool)
    d = decode_bytes(pil_bytes(Image.fromarray(bits), "BMP"))
    assert d.mode == "1" and d.pixels.tolist() == [[0, 255, 255], [255, 0, 0]]
    cmyk = np.zeros((2, 2, 4), np.uint8)
    cmyk[..., 0], cmyk[..., 3] = 200, 30
    cmyk[1, :, 1] = 100
    d = decode_bytes(pil_bytes(Image.fromarray(cmyk, "CMYK"), "TIFF"))
    # R = (255 - C)(255 - K)/255 and likewise for G (M) and B (Y)
    want = np.round((255.0 - cmyk[..., :3]) * (255.0 - cmyk[..., 3:]) / 255.0)
    assert d.pixels.shape == (2, 2, 3) and np.abs(d.pixels - want).max() <= 1


def test_sixteen_bit_and_float_tiff_are_stretched():
    a = np.array([[100, 300], [500, 900]], np.uint16)
    for mode in ("I;16", "I;16B"):
        im = Image.new(mode, (2, 2))
        im.putdata(a.ravel().tolist())
        d = decode_bytes(pil_bytes(im, "TIFF"))
        assert d.mode == mode
        np.testing.assert_allclose(d.pixels, (a - 100.0) * 255.0 / 800.0)
    f = np.array([[0.5, -1.5], [2.5, 0.0]], np.float32)
    np.testing.assert_allclose(decode_bytes(pil_bytes(Image.fromarray(f), "TIFF")).pixels, (f + 1.5) * 255.0 / 4.0)
    for bad in (np.inf, -np.inf, np.nan):  # one non-finite value: nothing to stretch by, the image is black
        g = f.copy()
        g[0, 0] = bad
        assert decode_bytes(pil_bytes(Image.fromarray(g), "TIFF")).pixels.tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_alpha_is_dropped_from_png():
    grey = np.array([[10, 20], [30, 40]], np.uint8)
    alpha = np.array([[255, 0], [7, 99]], np.uint8)
    la = np.stack([grey, alpha], axis=-1)
    d = decode_bytes(png_bytes(la, "LA"))
    np.testing.assert_array_equal(d.pixels, grey)
    rgba = np.stack([grey, grey + 1, grey + 2, alpha], axis=-1)
    np.testing.assert_array_equal(decode_bytes(png_bytes(rgba, "RGBA")).pixels, rgba[..., :3])


def test_sixteen_bit_rgb_png_keeps_the_high_byte():
    import imagecodecs

    rgb = np.zeros((2, 2, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 0x1234, 0xABCD, 0x00FF
    rgb[1, 1, 0] = 0xFFFF
    d = decode_bytes(imagecodecs.png_encode(rgb), name="rgb16.png")
    assert d.pixels.dtype == np.uint8
    assert d.pixels[0, 0].tolist() == [0x12, 0xAB, 0x00] and d.pixels[1, 1].tolist() == [0xFF, 0xAB, 0x00]


def jpeg_bytes(a: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a, mode).save(buf, format="JPEG", quality=100)
    return buf.getvalue()


def test_grey_colour_and_cmyk_jpegs_decode_close_to_their_source():
    grey = np.repeat(np.arange(0, 256, 16, dtype=np.uint8)[None, :], 16, axis=0)  # flat 8x8 blocks survive JPEG
    d = decode_bytes(jpeg_bytes(grey), name="g.jpg")
    assert d.pixels.shape == (16, 16) and np.abs(d.pixels.astype(int) - grey).max() <= 2
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 60, 120
    d = decode_bytes(jpeg_bytes(rgb), name="c.jpg")
    assert d.pixels.shape == (16, 16, 3) and np.abs(d.pixels.astype(int) - rgb).max() <= 3
    cmyk = np.zeros((16, 16, 4), np.uint8)
    cmyk[..., 0], cmyk[..., 3] = 200, 30
    cmyk[8:, :, 1] = 100
    d = decode_bytes(jpeg_bytes(cmyk, "CMYK"), name="k.jpg")
    want = (255.0 - cmyk[..., :3]) * (255.0 - cmyk[..., 3:]) / 255.0
    assert d.kind == "jpeg" and d.mode == "CMYK" and np.abs(d.pixels - want).max() <= 3


def test_jpeg_errors_say_which_and_how_to_fix():
    a = (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8)
    j = jpeg_bytes(a)
    hint = "re-export or exclude the file"
    with pytest.raises(ImageReadError) as e:
        decode_bytes(j[:-2], name="noeoi.jpg")
    assert (e.value.message, e.value.hint) == ("truncated JPEG (end-of-image marker missing)", hint)
    with pytest.raises(ImageReadError) as e:
        decode_bytes(j[: len(j) // 2] + b"\xff\xd9", name="half.jpg")
    assert (e.value.message, e.value.hint, e.value.path) == ("truncated JPEG (data ends early)", hint, "half.jpg")
    at = j.index(b"\xff\xc4") + 5  # a Huffman table whose 16 code counts are all 255: libjpeg's "bogus table"
    with pytest.raises(ImageReadError) as e:
        decode_bytes(j[:at] + b"\xff" * 16 + j[at + 16 :], name="dht.jpg")
    assert (e.value.message, e.value.hint, e.value.path) == ("corrupt JPEG", hint, "dht.jpg")


def test_truncated_and_corrupt_rasters_say_which():
    a = np.arange(64 * 64, dtype=np.uint32).reshape(64, 64).astype(np.uint8)
    for fmt in ("BMP", "TIFF"):
        data = pil_bytes(Image.fromarray(a), fmt)
        with pytest.raises(ImageReadError) as e:
            decode_bytes(data[: len(data) // 2], name="cut")
        assert e.value.line() == "cut: truncated image"
    with pytest.raises(ImageReadError) as e:
        decode_bytes(b"BM" + b"\0" * 60, name="bad.bmp")
    assert e.value.line() == "bad.bmp: corrupt image (OSError)"  # a BMP header Pillow rejects


# --- EXIF orientation, by the EXIF 2.3 table (where row 0 and column 0 of the stored image belong) ----
STORED = np.array([[1, 2, 3], [4, 5, 6]], np.uint8) * 40
SHOWN = {
    1: [[1, 2, 3], [4, 5, 6]],  # top-left: as stored
    2: [[3, 2, 1], [6, 5, 4]],  # top-right: mirrored left-right
    3: [[6, 5, 4], [3, 2, 1]],  # bottom-right: turned 180
    4: [[4, 5, 6], [1, 2, 3]],  # bottom-left: mirrored top-bottom
    5: [[1, 4], [2, 5], [3, 6]],  # left-top: transposed
    6: [[4, 1], [5, 2], [6, 3]],  # right-top: turned 90 clockwise to display
    7: [[6, 3], [5, 2], [4, 1]],  # right-bottom: transverse
    8: [[3, 6], [2, 5], [1, 4]],  # left-bottom: turned 90 counter-clockwise to display
}


@pytest.mark.parametrize("orientation", sorted(SHOWN))
def test_exif_orientation_by_the_table(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(STORED).save(buf, "PNG", exif=exif.tobytes())
    d = decode_bytes(buf.getvalue(), name=f"o{orientation}.png")
    assert d.pixels.tolist() == (np.array(SHOWN[orientation]) * 40).tolist()
    assert d.pixels.flags.c_contiguous


def test_a_broken_exif_block_keeps_the_stored_orientation():
    buf = io.BytesIO()
    Image.fromarray(STORED).save(buf, "PNG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff")  # IFD past the end
    data = buf.getvalue()
    assert b"eXIf" in data
    assert decode_bytes(data, name="broken.png").pixels.tolist() == STORED.tolist()
    # a block Pillow refuses outright ("not a TIFF file"): the image still shows as stored
    buf = io.BytesIO()
    Image.fromarray(STORED).save(buf, "PNG", exif=b"Exif\x00\x00XX\x00*\x00\x00\x00\x08")
    with pytest.raises(SyntaxError):
        Image.open(io.BytesIO(buf.getvalue())).getexif()
    assert decode_bytes(buf.getvalue(), name="notiff.png").pixels.tolist() == STORED.tolist()

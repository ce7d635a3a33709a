"""Hostile files against the decoders: malformed DICOM fields, decompression bombs, truncation
that keeps its end marker, EXIF orientation, WebP and compressed DICOM transfer syntaxes.
Every file is generated here (or is a real FracAtlas radiograph, or one pydicom ships)."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from dicom_helpers import dicom_bytes as dicom_file
from edge.core.errors import ImageReadError
from edge.core.imageio import decode_bytes, read_image

MARKER = "PHIMARKER7431"


def dicom_bytes(
    px: np.ndarray | None = None, tsyntax=ExplicitVRLittleEndian, patch: tuple[bytes, bytes] | None = None, **fields
) -> bytes:
    """A valid 8-bit MONOCHROME2 DICOM carrying MARKER as the patient name, with ``fields`` set or (value
    None) deleted afterwards; ``patch`` replaces bytes in the written file."""
    px = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (32, 1)) if px is None else px
    out = dicom_file(px, tsyntax=tsyntax, **{"PatientName": MARKER, **fields})
    if patch:  # byte-level damage pydicom refuses to write (an unknown VR)
        assert patch[0] in out
        out = out.replace(patch[0], patch[1], 1)
    return out


def _raw_element(tag: int, vr: bytes, value: bytes):
    """Set an element with any VR and raw bytes (bypassing pydicom's checks), as a broken PACS would."""
    from pydicom.dataelem import RawDataElement

    def put(ds):
        ds[tag] = RawDataElement(tag, vr.decode(), len(value), value, 0, False, True)  # type: ignore[index]

    return put


def _voi(items):
    def put(ds):
        ds.VOILUTSequence = Sequence(items)

    return put


def _voi_item(desc, data=b"\0\0" * 4):
    from pydicom.dataset import Dataset

    item = Dataset()
    if desc is not None:
        item.add_new(0x00283002, "US", desc)
        item.add_new(0x00283006, "OW", data)
    return item


MALFORMED = {
    "NumberOfFrames text": dict(NumberOfFrames=_raw_element(0x00280008, b"IS", f"abc{MARKER}".encode()[:16])),
    "WindowCenter text": dict(WindowCenter=_raw_element(0x00281050, b"DS", b"abc "), WindowWidth=400),
    "WindowCenter empty": dict(WindowCenter=_raw_element(0x00281050, b"DS", b""), WindowWidth=400),
    "WindowWidth text": dict(WindowCenter=40, WindowWidth=_raw_element(0x00281051, b"DS", MARKER.encode()[:16])),
    "RescaleSlope text": dict(RescaleSlope=_raw_element(0x00281053, b"DS", b"slope!"), RescaleIntercept=0),
    "RescaleIntercept NaN": dict(RescaleSlope=1, RescaleIntercept=_raw_element(0x00281052, b"DS", b"NaN ")),
    "VOI LUT empty sequence": dict(VOILUTSequence=_voi([])),
    "VOI LUT empty item": dict(VOILUTSequence=_voi([_voi_item(None)])),
    "VOI LUT 0 bits": dict(VOILUTSequence=_voi([_voi_item([4, 0, 0])])),
    "Rows unknown VR": dict(patch=(b"\x28\x00\x10\x00US", b"\x28\x00\x10\x00ZZ")),
    "Columns unknown VR": dict(patch=(b"\x28\x00\x11\x00US", b"\x28\x00\x11\x00QQ")),
    "Rows text VR": dict(Rows=_raw_element(0x00280010, b"LO", b"rows")),
    "Columns zero": dict(Columns=0),
    "Rows missing": dict(Rows=None),
    "BitsAllocated 12": dict(BitsAllocated=12),
    "SamplesPerPixel 9": dict(SamplesPerPixel=9),
    "PixelData short": dict(PixelData=b"\0" * 10),
    "Photometric odd": dict(PhotometricInterpretation="PALETTE COLOR"),
    "NumberOfFrames huge": dict(NumberOfFrames=10_000_000),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_dicom_field_is_one_clean_error_or_an_image(case):
    data = dicom_bytes(**MALFORMED[case])
    try:
        d = decode_bytes(data, name="bad.dcm")
    except ImageReadError as e:
        line = e.line()
        assert line.startswith("bad.dcm: ") and "\n" not in line
        assert MARKER not in line and "abc" not in line and "slope!" not in line  # no values, names only
        return
    # a few are still usable images (an empty WindowCenter means "no window"): then sane pixels
    assert d.pixels.ndim == 2 and np.isfinite(d.pixels).all() and d.pixels.min() >= 0 and d.pixels.max() <= 255


def test_pydicom_logs_and_warnings_never_reach_stderr(tmp_path):
    """A fresh interpreter (pydicom imported lazily, as in production) decodes every malformed
    file with logging at DEBUG and warnings shown: the marker value must appear nowhere."""
    for i, case in enumerate(sorted(MALFORMED)):
        (tmp_path / f"{i}.dcm").write_bytes(dicom_bytes(**MALFORMED[case]))
    code = (
        "import logging, sys, warnings, pathlib\n"
        "logging.basicConfig(level=logging.DEBUG)\nwarnings.simplefilter('always')\n"
        "from edge.core.imageio import read_image\nfrom edge.core.errors import ImageReadError\n"
        f"for p in sorted(pathlib.Path({str(tmp_path)!r}).glob('*.dcm')):\n"
        "    try: read_image(p)\n    except ImageReadError as e: print(e.line())\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1]
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert MARKER[:10] not in r.stderr + r.stdout
    assert "abc" not in r.stderr and "Traceback" not in r.stderr


# --- bombs: refused from the header, before any allocation -------------------------------
def png_header_only(width: int, height: int, bit_depth: int = 8, colour: int = 0) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def png_16bit_bomb(side: int = 7000) -> bytes:
    """A real, complete 16-bit greyscale PNG of side x side zeros (about 100 KB compressed)."""
    row = b"\0" + b"\0" * (2 * side)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    return (
        png_header_only(side, side, 16)[:33]
        + struct.pack(">I", len(body))
        + b"IDAT"
        + body
        + struct.pack(">I", zlib.crc32(b"IDAT" + body))
        + png_header_only(1, 1)[-12:]
    )


def deflated_dicom_bomb(side: int = 8192) -> bytes:
    """A deflated DICOM whose 8192x8192 16-bit image (128 MB) compresses to about 130 KB."""
    return dicom_bytes(np.zeros((side, side), np.uint16), tsyntax=DeflatedExplicitVRLittleEndian)


BOMBS = {
    "png 1x50,000,000": lambda: png_header_only(1, 50_000_000),
    "png 16-bit 7000x7000": png_16bit_bomb,
    "png 60000x60000 header": lambda: png_header_only(60000, 60000),
    "dicom deflated 8192^2 16-bit": deflated_dicom_bomb,
    "dicom 65535^2 declared": lambda: dicom_bytes(Rows=65535, Columns=65535),
}


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_bombs_are_refused_as_too_large(bomb):
    data = BOMBS[bomb]()
    assert len(data) < 2_000_000
    with pytest.raises(ImageReadError, match="too large|decompression bomb"):
        decode_bytes(data, name="bomb")


def test_deflated_dicom_within_budget_decodes():
    px = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)
    d = decode_bytes(dicom_bytes(px, tsyntax=DeflatedExplicitVRLittleEndian), name="ok.dcm")
    assert d.pixels.shape == (64, 64) and d.pixels.max() == pytest.approx(255.0)


# --- truncation: found by the decoder, not by the end marker -------------------------------
@pytest.fixture(scope="module")
def real_jpegs(fracatlas: Path) -> list[bytes]:
    out = []
    for p in sorted((fracatlas / "test" / "fractured").glob("*.jpg"))[:20]:
        data = p.read_bytes()
        if data.rstrip(b"\0").endswith(b"\xff\xd9"):
            out.append(data)
    return out[:8]


@pytest.mark.parametrize("frac", [0.5, 0.9])
def test_jpeg_cut_with_end_marker_reappended_fails(real_jpegs, frac):
    for data in real_jpegs:
        decode_bytes(data)  # the whole file is fine
        cut = data[: int(len(data) * frac)] + b"\xff\xd9"
        with pytest.raises(ImageReadError, match="truncated|corrupt"):
            decode_bytes(cut, name="cut.jpg")


def test_real_truncated_fracatlas_files_are_refused(fracatlas: Path):
    cut = [
        p
        for p in sorted(fracatlas.glob("*/not_fractured/IMG00041*.jpg"))
        if not p.read_bytes().rstrip(b"\0").endswith(b"\xff\xd9")
    ][:10]
    assert cut, "the FracAtlas copy should contain truncated files"
    for p in cut:
        with pytest.raises(ImageReadError, match="truncated"):
            read_image(p)


def _png(arr: np.ndarray, **kw) -> bytes:
    b = io.BytesIO()
    Image.fromarray(arr).save(b, "PNG", **kw)
    return b.getvalue()


def test_png_with_fewer_rows_than_declared_fails():
    arr = np.random.default_rng(0).integers(0, 255, (120, 80), dtype=np.uint8)
    data = _png(arr)
    i = data.find(b"IDAT") - 4
    n = struct.unpack(">I", data[i : i + 4])[0]
    raw = zlib.decompress(data[i + 8 : i + 8 + n])
    short = zlib.compress(raw[: len(raw) // 2])  # a complete zlib stream holding half the rows
    chunk = struct.pack(">I", len(short)) + b"IDAT" + short + struct.pack(">I", zlib.crc32(b"IDAT" + short))
    with pytest.raises(ImageReadError, match="truncated|corrupt"):
        decode_bytes(data[:i] + chunk + data[-12:], name="short.png")
    with pytest.raises(ImageReadError, match="truncated|corrupt"):
        decode_bytes(data[: i + 8 + n // 2], name="cut.png")


# --- parity decisions: EXIF orientation, WebP, 16-bit PNG ------------------------------------
@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_matches_pillow_exif_transpose(fmt, orientation):
    arr = np.zeros((40, 64, 3), np.uint8)
    arr[:10, :20] = 255  # a bright corner shows any flip or turn
    arr[..., 1] = 90
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = orientation
    b = io.BytesIO()
    im.save(b, fmt, exif=exif.tobytes(), **({"quality": 100} if fmt != "PNG" else {}))
    data = b.getvalue()
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    got = decode_bytes(data, name=f"o{orientation}.{fmt.lower()}").pixels
    assert got.shape == expected.shape and np.array_equal(got, expected)


def test_webp_is_sniffed_by_content_and_decoded():
    arr = np.tile(np.arange(0, 256, 2, dtype=np.uint8), (16, 1))
    b = io.BytesIO()
    Image.fromarray(arr).save(b, "WEBP", lossless=True)
    d = decode_bytes(b.getvalue(), name="image.bin")
    assert d.kind == "webp" and np.array_equal(d.pixels, arr)


def test_16bit_png_stays_minmax_windowed():
    arr = np.linspace(1000, 3000, 64 * 8).reshape(8, 64).astype(np.uint16)
    d = decode_bytes(_png(arr), name="x.png")
    assert d.pixels.min() == 0 and d.pixels.max() == pytest.approx(255.0)


# --- compressed DICOM through pydicom's plugins ---------------------------------------------
TRANSFER_SYNTAXES = {  # pydicom's own test files, available offline in the installed package
    "JPEG Baseline": "SC_jpeg_no_color_transform.dcm",
    "JPEG Extended 12-bit": "JPGExtended.dcm",
    "JPEG Lossless SV1": "SC_rgb_jpeg_gdcm.dcm",
    "JPEG-LS lossless": "MR_small_jpeg_ls_lossless.dcm",
    "JPEG-LS near-lossless": "JPEGLSNearLossless_16.dcm",
    "JPEG 2000": "JPEG2000.dcm",
    "JPEG 2000 lossless": "MR_small_jp2klossless.dcm",
    "RLE": "MR_small_RLE.dcm",
    "Deflate": "image_dfl.dcm",
    "Explicit VR Big Endian": "MR_small_bigendian.dcm",
}


@pytest.mark.parametrize("syntax", sorted(TRANSFER_SYNTAXES))
def test_compressed_dicom_transfer_syntax_decodes(syntax):
    from pydicom.data import get_testdata_file

    path = get_testdata_file(TRANSFER_SYNTAXES[syntax])
    d = read_image(path)
    assert d.kind == "dicom" and d.pixels.shape[0] > 8 and np.ptp(np.asarray(d.pixels, float)) > 0


def test_jpeg_lossless_the_tests_encode_matches_the_source():
    """A 16-bit image encoded here (JPEG-LS lossless via pyjpegls) decodes to exactly its values."""
    from pydicom.uid import JPEGLSLossless

    px = (np.arange(48 * 40).reshape(48, 40) * 7 % 4000).astype(np.uint16)
    ds_bytes = dicom_bytes(px)
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(ds_bytes))
    ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls")
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    d = decode_bytes(buf.getvalue(), name="ls.dcm")
    lo, hi = px.min(), px.max()
    assert np.allclose(d.pixels, (px - lo) * 255.0 / (hi - lo))

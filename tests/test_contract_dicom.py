"""DICOM decoding held to the standard's formulas, written out here (never by calling the code):
colour (RGB in both planar configurations, YBR_FULL by PS3.3 C.7.6.3.1.2), VOI LUT sequences
(PS3.3 C.11.2.1.1), linear windows after the modality rescale, MONOCHROME1 inversion, every
decoding budget at exactly its limit, deflated data, and each error branch by its message.
Every file is written here with pydicom (pixels from a real FracAtlas radiograph where the
values matter), or is one of pydicom's own test files."""

from __future__ import annotations

import io
import re
import sys
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian

from dicom_helpers import dicom_bytes
from edge.core.errors import ImageReadError
from edge.core.imageio import decode_bytes
from edge.core.limits import MB, Limits

HTJ2K = "1.2.840.10008.1.2.4.201"  # decoded by pylibjpeg only (the dicom extra)


def raw(tag: int, vr: str, value: bytes) -> Callable[[Dataset], None]:
    """An element with raw bytes, as a broken archive would write it (pydicom converts it lazily)."""

    def put(ds: Dataset) -> None:
        ds[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)  # type: ignore[assignment,arg-type]

    return put


def voi(desc: list[int] | None, lut: list[int] | None) -> Callable[[Dataset], None]:
    def put(ds: Dataset) -> None:
        item = Dataset()
        if desc is not None:
            item.add_new(0x00283002, "US", desc)  # LUTDescriptor: entries, first mapped value, bits
        if lut is not None:
            item.add_new(0x00283006, "US", lut)  # LUTData
        ds.VOILUTSequence = Sequence([item])

    return put


def error(data: bytes, pattern: str, **kw: Any) -> ImageReadError:
    """The one-line error for ``data``, named t.dcm, whose message matches ``pattern`` from its start."""
    with pytest.raises(ImageReadError) as e:
        decode_bytes(data, name="t.dcm", **kw)
    assert e.value.path == "t.dcm"
    assert re.match(pattern, e.value.message), e.value.message
    return e.value


@pytest.fixture(scope="module")
def radiograph(fracatlas: Path) -> np.ndarray:
    """A 24 x 32 crop of a real radiograph (grey, uint8) with some texture in it."""
    path = sorted((fracatlas / "test" / "fractured").glob("*.jpg"))[0]
    with Image.open(path) as im:
        grey = np.asarray(im.convert("L"))
    h, w = grey.shape
    crop = grey[h // 2 : h // 2 + 24, w // 2 : w // 2 + 32]
    assert np.ptp(crop) > 20
    return np.ascontiguousarray(crop)


def stretch(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return (x - x.min()) * 255.0 / (x.max() - x.min())


# --- colour ------------------------------------------------------------------------------------
def colour_of(grey: np.ndarray) -> np.ndarray:
    """Three different channels with the radiograph's texture in each."""
    return np.stack([grey, 255 - grey, grey // 2], axis=-1).astype(np.uint8)


def test_rgb_dicom_in_either_planar_configuration_keeps_its_values(radiograph):
    rgb = colour_of(radiograph)
    d = decode_bytes(dicom_bytes(rgb, "RGB"), name="rgb.dcm")
    assert (d.kind, d.mode, d.frames) == ("dicom", "RGB", 1)
    assert d.pixels.dtype == np.uint8 and d.pixels.shape == (24, 32, 3)
    np.testing.assert_array_equal(d.pixels, rgb)
    planes = np.ascontiguousarray(rgb.transpose(2, 0, 1))  # RRR...GGG...BBB...
    d1 = decode_bytes(dicom_bytes(planes, "RGB", planar=1), name="rgb1.dcm")
    np.testing.assert_array_equal(d1.pixels, rgb)


def test_ybr_full_is_converted_to_rgb_by_the_standard(radiograph):
    # PS3.3 C.7.6.3.1.2 (YBR_FULL, 8 bits): R = Y + 1.402 (Cr-128), G = Y - 0.344136 (Cb-128) - 0.714136 (Cr-128),
    # B = Y + 1.772 (Cb-128), clipped to 0..255; rounding may differ by one
    y = radiograph.astype(np.float64)
    cb = np.full_like(y, 100.0)
    cr = np.clip(y + 40, 0, 255)
    ybr = np.stack([y, cb, cr], axis=-1).astype(np.uint8)
    want = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128), y + 1.772 * (cb - 128)], axis=-1)
    d = decode_bytes(dicom_bytes(ybr, "YBR_FULL"), name="ybr.dcm")
    assert d.mode == "YBR_FULL" and d.pixels.dtype == np.uint8 and d.pixels.shape == (24, 32, 3)
    assert np.abs(d.pixels.astype(np.float64) - np.clip(want, 0, 255)).max() <= 1.0


def test_sixteen_bit_rgb_is_stretched_over_all_channels_and_truncated_to_uint8():
    rgb = np.zeros((2, 3, 3), np.uint16)
    rgb[..., 0], rgb[..., 2] = 1000, 20000
    rgb[..., 1] = [[2000, 3000, 4000], [5000, 6000, 7000]]
    d = decode_bytes(dicom_bytes(rgb, "RGB"), name="rgb16.dcm")
    assert d.pixels.dtype == np.uint8
    np.testing.assert_array_equal(d.pixels, np.floor((rgb - 1000.0) * 255.0 / 19000.0))


def test_grey_pixels_labelled_rgb_are_displayed_as_grey():
    # one sample per pixel decides, not the label: the grey path stretches (and would window) it
    px = np.array([[10, 20], [30, 50]], np.uint8)
    d = decode_bytes(dicom_bytes(px, "MONOCHROME2", PhotometricInterpretation="RGB"), name="odd.dcm")
    assert d.pixels.shape == (2, 2)
    np.testing.assert_allclose(d.pixels, stretch(px))


def test_a_multi_valued_photometric_interpretation_is_a_named_error():
    # VM 1 in the standard; pydicom decodes no pixels under two labels (so the label is read only as a str)
    px = np.array([[10, 20], [30, 50]], np.uint8)
    data = dicom_bytes(px, PhotometricInterpretation=["MONOCHROME1", "MONOCHROME2"])
    error(data, r"DICOM pixel data cannot be decoded \(TypeError\)$")


# --- grey: rescale, windows, VOI LUT, MONOCHROME1 -----------------------------------------------
def linear_window(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1, onto 0..255: below c - 0.5 - (w-1)/2 -> 0, above c - 0.5 + (w-1)/2 -> 255."""
    return np.clip(((x - (c - 0.5)) / (w - 1) + 0.5) * 255.0, 0.0, 255.0)


def test_missing_rescale_fields_mean_slope_one_and_intercept_zero(radiograph):
    px = radiograph.astype(np.uint16) * 16  # 12-bit range
    d = decode_bytes(dicom_bytes(px, WindowCenter=2000, WindowWidth=1001), name="w.dcm")
    np.testing.assert_allclose(d.pixels, linear_window(px.astype(np.float64), 2000, 1001), atol=1e-9)
    only_slope = decode_bytes(dicom_bytes(px, WindowCenter=2000, WindowWidth=1001, RescaleSlope=2), name="s.dcm")
    np.testing.assert_allclose(only_slope.pixels, linear_window(px * 2.0, 2000, 1001), atol=1e-9)
    only_icpt = decode_bytes(dicom_bytes(px, WindowCenter=2000, WindowWidth=1001, RescaleIntercept=-300), name="i.dcm")
    np.testing.assert_allclose(only_icpt.pixels, linear_window(px - 300.0, 2000, 1001), atol=1e-9)


def test_negative_slope_reverses_the_stretch():
    px = np.array([[0, 10], [20, 40]], np.uint16)
    d = decode_bytes(dicom_bytes(px, RescaleSlope=-2, RescaleIntercept=100), name="neg.dcm")
    np.testing.assert_allclose(d.pixels, stretch(100.0 - 2.0 * px))


def test_window_needs_both_centre_and_width(radiograph):
    px = radiograph.astype(np.uint16)
    for fields in ({"WindowCenter": 100}, {"WindowWidth": 50}, {"WindowCenter": raw(0x00281050, "DS", b""), "WindowWidth": 50}):
        d = decode_bytes(dicom_bytes(px, **fields), name="half.dcm")
        np.testing.assert_allclose(d.pixels, stretch(px), err_msg=str(fields))


def test_multi_valued_window_uses_the_first_pair(radiograph):
    px = radiograph.astype(np.uint16)
    d = decode_bytes(dicom_bytes(px, WindowCenter=[100, 30], WindowWidth=[41, 4000]), name="mw.dcm")
    np.testing.assert_allclose(d.pixels, linear_window(px.astype(np.float64), 100, 41), atol=1e-9)


def voi_lut(x: np.ndarray, first: int, lut: list[int], bits: int) -> np.ndarray:
    """PS3.3 C.11.2.1.1: below the first mapped value -> the first entry, past the last -> the last entry."""
    idx = np.clip(x.astype(np.int64) - first, 0, len(lut) - 1)
    return np.asarray(lut, np.float64)[idx] * 255.0 / (2**bits - 1)


@pytest.mark.parametrize("bits", [8, 10, 12, 16])  # PS3.3 C.8.11.3.1.5: 8 or 10-16 bits per entry
def test_voi_lut_sequence_by_the_standard(bits):
    top = 2**bits - 1
    lut = [0, top // 7, top // 3, top // 2, top]
    px = np.arange(0, 12, dtype=np.uint16).reshape(2, 6)  # below, inside and past the table (first mapped 3)
    d = decode_bytes(dicom_bytes(px, VOILUTSequence=voi([5, 3, bits], lut)), name="lut.dcm")
    np.testing.assert_allclose(d.pixels, voi_lut(px, 3, lut, bits), atol=1e-9)
    assert d.pixels.min() == 0.0 and d.pixels.max() == 255.0


def test_voi_lut_applies_to_rescaled_values_and_wins_over_a_window():
    lut = [0, 1000, 2000, 3000, 4095]
    px = np.arange(0, 8, dtype=np.uint16).reshape(2, 4)
    d = decode_bytes(
        dicom_bytes(px, RescaleSlope=2, RescaleIntercept=-1, WindowCenter=3, WindowWidth=2, VOILUTSequence=voi([5, 2, 12], lut)),
        name="lutw.dcm",
    )
    np.testing.assert_allclose(d.pixels, voi_lut(px.astype(np.int64) * 2 - 1, 2, lut, 12), atol=1e-9)


def test_monochrome1_is_inverted_after_window_lut_or_stretch(radiograph):
    px = radiograph.astype(np.uint16)
    plain = decode_bytes(dicom_bytes(px, "MONOCHROME1"), name="m1.dcm")
    assert plain.mode == "MONOCHROME1"
    np.testing.assert_allclose(plain.pixels, 255.0 - stretch(px))
    win = decode_bytes(dicom_bytes(px, "MONOCHROME1", WindowCenter=120, WindowWidth=61), name="m1w.dcm")
    np.testing.assert_allclose(win.pixels, 255.0 - linear_window(px.astype(np.float64), 120, 61), atol=1e-9)
    lut = [0, 50, 200, 255]
    lt = decode_bytes(dicom_bytes(px, "MONOCHROME1", VOILUTSequence=voi([4, 100, 8], lut)), name="m1l.dcm")
    np.testing.assert_allclose(lt.pixels, 255.0 - voi_lut(px, 100, lut, 8), atol=1e-9)


def test_empty_voi_lut_sequence_means_no_lut():
    px = np.array([[10, 20], [30, 50]], np.uint16)
    d = decode_bytes(dicom_bytes(px, VOILUTSequence=lambda ds: setattr(ds, "VOILUTSequence", Sequence([]))), name="e.dcm")
    np.testing.assert_allclose(d.pixels, stretch(px))


@pytest.mark.parametrize(
    ("desc", "lut", "message"),
    [
        ([4, 0], [0, 1, 2, 3], "DICOM VOI LUT sequence item is empty or incomplete"),
        ([4, 0, 8, 1], [0, 1, 2, 3], "DICOM VOI LUT sequence item is empty or incomplete"),
        ([4, 0, 8], None, "DICOM VOI LUT sequence item is empty or incomplete"),
        (None, [0, 1, 2, 3], "DICOM VOI LUT sequence item is empty or incomplete"),
        ([4, 0, 0], [0, 1, 2, 3], "DICOM VOI LUT descriptor has an invalid bit depth"),
        ([4, 0, 1], [0, 1, 1, 0], "DICOM VOI LUT descriptor has an invalid bit depth"),
        ([4, 0, 7], [0, 1, 2, 3], "DICOM VOI LUT descriptor has an invalid bit depth"),
        ([4, 0, 9], [0, 1, 2, 3], "DICOM VOI LUT descriptor has an invalid bit depth"),
        ([4, 0, 17], [0, 1, 2, 3], "DICOM VOI LUT descriptor has an invalid bit depth"),
        ([10, 0, 8], [0, 1, 2, 3], r"DICOM display fields cannot be applied \(IndexError\)"),  # 10 entries declared, 4 given
    ],
)
def test_bad_voi_lut_is_a_named_error(desc, lut, message):
    px = np.arange(12, dtype=np.uint16).reshape(3, 4)
    error(dicom_bytes(px, VOILUTSequence=voi(desc, lut)), message + "$")


def test_non_numeric_voi_lut_descriptor_is_a_named_error():
    def put(ds: Dataset) -> None:  # a broken writer's descriptor: text, with a word where the bit depth goes
        item = Dataset()
        item.add_new(0x00283002, "LO", ["4", "0", "bits"])
        item.add_new(0x00283006, "US", [0, 1, 2, 3])
        ds.VOILUTSequence = Sequence([item])

    px = np.arange(12, dtype=np.uint16).reshape(3, 4)
    error(dicom_bytes(px, VOILUTSequence=put), "DICOM VOI LUT descriptor is not numeric$")


# --- fields that are not what they claim ---------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"WindowCenter": raw(0x00281050, "DS", b"abc "), "WindowWidth": 40}, "DICOM field WindowCenter is not a number"),
        ({"WindowCenter": 40, "WindowWidth": raw(0x00281051, "DS", b"wide")}, "DICOM field WindowWidth is not a number"),
        ({"RescaleSlope": raw(0x00281053, "DS", b"slope!")}, "DICOM field RescaleSlope is not a number"),
        ({"RescaleIntercept": raw(0x00281052, "DS", b"NaN ")}, "DICOM field RescaleIntercept is not a finite number"),
        ({"RescaleSlope": raw(0x00281053, "DS", b"inf ")}, "DICOM field RescaleSlope is not a finite number"),
        ({"NumberOfFrames": raw(0x00280008, "IS", b"2.5 ")}, "DICOM field NumberOfFrames is not a whole number"),
        ({"Rows": raw(0x00280010, "DS", b"tall")}, "DICOM field Rows is not a number"),
        ({"Columns": raw(0x00280011, "DS", b"wide")}, "DICOM field Columns is not a number"),
        ({"Rows": None}, "DICOM Rows/Columns missing or unreadable"),
        ({"Columns": None}, "DICOM Rows/Columns missing or unreadable"),
        ({"Columns": 0}, "DICOM Rows/Columns missing or unreadable"),
        ({"SamplesPerPixel": 5}, "DICOM SamplesPerPixel/BitsAllocated not supported"),
        ({"SamplesPerPixel": 4}, "DICOM SamplesPerPixel/BitsAllocated not supported"),
        ({"SamplesPerPixel": 2}, "DICOM SamplesPerPixel/BitsAllocated not supported"),
        ({"SamplesPerPixel": raw(0x00280002, "DS", b"one ")}, "DICOM field SamplesPerPixel is not a number"),
        ({"BitsAllocated": raw(0x00280100, "DS", b"8bit")}, "DICOM field BitsAllocated is not a number"),
        ({"SamplesPerPixel": 0}, "DICOM SamplesPerPixel/BitsAllocated not supported"),
        ({"BitsAllocated": 12}, "DICOM SamplesPerPixel/BitsAllocated not supported"),
        ({"PixelData": b"\0" * 10}, r"DICOM pixel data cannot be decoded \(ValueError\)"),
        ({"PixelData": None}, r"DICOM has no pixel data \(not an image object\)"),
    ],
)
def test_bad_field_is_a_named_error(fields, message):
    px = np.tile(np.arange(0, 64, 4, dtype=np.uint16), (4, 1))
    error(dicom_bytes(px, **fields), message + "$")


@pytest.mark.parametrize("missing", ["SamplesPerPixel", "BitsAllocated"])
def test_a_missing_sample_field_counts_as_one_byte_in_the_budget_and_pydicom_refuses_it(missing):
    # Type 1 fields: the budget reads a missing one as one 8-bit sample, then pydicom cannot decode the pixels
    data = dicom_bytes(np.arange(20, dtype=np.uint8).reshape(4, 5), **{missing: None})
    error(data, r"DICOM pixel data cannot be decoded \(AttributeError\)$", limits=Limits(max_decoded_bytes=20))
    error(data, "image too large", limits=Limits(max_decoded_bytes=19))


def test_the_middle_frame_is_the_default_and_a_frame_beyond_the_file_is_a_named_error():
    px = np.zeros((4, 2, 5), np.uint8)
    for f in range(4):
        px[f, 0, f] = 200  # frame f: one bright pixel in column f
    data = dicom_bytes(px, NumberOfFrames=4)
    d = decode_bytes(data, name="m.dcm")
    assert d.frames == 4 and np.argmax(d.pixels[0]) == 2 and d.pixels.max() > 254  # frame 4 // 2 = 2
    assert np.argmax(decode_bytes(data, name="m.dcm", frame=3).pixels[0]) == 3
    error(data, r"frame 4 out of range \(the file has 4\)$", frame=4)
    error(data, r"frame -1 out of range \(the file has 4\)$", frame=-1)


def test_zero_frames_is_read_as_one():
    px = np.array([[0, 5], [10, 20]], np.uint8)
    d = decode_bytes(dicom_bytes(px, NumberOfFrames=0), name="z.dcm")
    assert d.frames == 1
    np.testing.assert_allclose(d.pixels, stretch(px))


def test_unreadable_dataset_is_a_named_error():
    data = dicom_bytes(np.zeros((4, 4), np.uint8))
    error(data[: 132 + 9], r"unreadable DICOM \(BytesLengthException\)$")  # cut inside the first meta element (its 12 bytes)


def test_transfer_syntax_without_a_decoder_names_the_extra(monkeypatch):
    # HTJ2K is decoded only by pylibjpeg (the dicom extra): re-register that plugin as not installed, which is
    # what pydicom does when pylibjpeg-openjpeg is absent, and restore it afterwards
    import pydicom.pixels.decoders.pylibjpeg as plugin
    from pydicom.encaps import encapsulate
    from pydicom.pixels import get_decoder

    def encapsulated(ds: Dataset) -> None:
        ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 40])

    data = dicom_bytes(np.zeros((4, 4), np.uint8), tsyntax=HTJ2K, PixelData=encapsulated)
    decoder, where = get_decoder(HTJ2K), ("pydicom.pixels.decoders.pylibjpeg", "_decode_frame")
    decoder.remove_plugin("pylibjpeg")
    try:
        with monkeypatch.context() as m:
            m.setattr(plugin, "is_available", lambda uid: False)
            decoder.add_plugin("pylibjpeg", where)
        e = error(data, f"no decoder installed for DICOM transfer syntax {HTJ2K}$")
        assert e.hint == "install the DICOM decoders: pip install 'fracture-edge[dicom]'"
    finally:
        decoder.remove_plugin("pylibjpeg")
        decoder.add_plugin("pylibjpeg", where)
    # with the plugin back, the same bytes are bad data for an installed decoder
    error(data, r"DICOM pixel data cannot be decoded \(RuntimeError\)$")


def test_a_decoder_that_fails_on_the_data_is_a_decoding_error_not_a_missing_decoder():
    # JPEG 2000 decoders are installed (Pillow's openjpeg): a broken codestream is bad data, with no install hint
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    def broken(ds: Dataset) -> None:
        ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 40])  # SOC, then a truncated SIZ marker

    e = error(
        dicom_bytes(np.zeros((4, 4), np.uint8), tsyntax=JPEG2000Lossless, PixelData=broken),
        r"DICOM pixel data cannot be decoded \(RuntimeError\)$",
    )
    assert e.hint is None


# --- bit depths and budgets at exactly their limits ----------------------------------------------
def test_one_bit_pixels_are_unpacked_and_cost_one_byte_each():
    bits = np.array([1, 0, 1, 1, 0, 0, 1, 0] * 2, np.uint8)  # 2 x 8 pixels, least significant bit first
    packed = np.packbits(bits, bitorder="little").reshape(1, 2)
    data = dicom_bytes(packed, Rows=2, Columns=8, BitsAllocated=1, BitsStored=1, HighBit=0)
    d = decode_bytes(data, name="b1.dcm", limits=Limits(max_decoded_bytes=16))
    np.testing.assert_array_equal(d.pixels, bits.reshape(2, 8) * 255.0)
    error(data, "image too large", limits=Limits(max_decoded_bytes=15))


@pytest.mark.parametrize(
    ("px", "photometric", "per_pixel"),
    [
        (np.arange(20, dtype=np.uint8).reshape(4, 5), "MONOCHROME2", 1),
        (np.arange(20, dtype=np.uint16).reshape(4, 5) * 100, "MONOCHROME2", 2),
        (np.arange(20, dtype=np.uint32).reshape(4, 5) * 70000, "MONOCHROME2", 4),
        (np.arange(20, dtype=np.uint64).reshape(4, 5) * 2**40, "MONOCHROME2", 8),
        (np.arange(60, dtype=np.uint8).reshape(4, 5, 3), "RGB", 3),
    ],
)
def test_decoded_bytes_budget_holds_at_exactly_the_limit(px, photometric, per_pixel):
    data = dicom_bytes(px, photometric)
    cost = 4 * 5 * per_pixel
    d = decode_bytes(data, name="t.dcm", limits=Limits(max_decoded_bytes=cost))
    assert d.pixels.shape[:2] == (4, 5)
    if px.ndim == 2:
        np.testing.assert_allclose(d.pixels, stretch(px))
    e = error(data, r"image too large \(0 MB decoded, limit 0 MB\)$", limits=Limits(max_decoded_bytes=cost - 1))
    assert "\n" not in e.line()


def test_frames_count_in_the_byte_budget():
    px = np.stack([np.full((4, 5), v, np.uint16) for v in (0, 100, 200)])
    data = dicom_bytes(px, NumberOfFrames=3)
    assert decode_bytes(data, name="f.dcm", limits=Limits(max_decoded_bytes=3 * 20 * 2)).frames == 3
    error(data, "image too large", limits=Limits(max_decoded_bytes=3 * 20 * 2 - 1))


# --- float pixels ---------------------------------------------------------------------------------
def float_pixels(values: np.ndarray) -> Callable[[Dataset], None]:
    def put(ds: Dataset) -> None:
        del ds.PixelData, ds.PixelRepresentation, ds.BitsStored, ds.HighBit
        ds.BitsAllocated = 32
        ds.FloatPixelData = values.astype(np.float32).tobytes()

    return put


def test_float_pixel_data_is_stretched_and_non_finite_is_black():
    v = np.array([[0.5, 1.5], [-1.0, 3.0]])
    d = decode_bytes(dicom_bytes(np.zeros((2, 2), np.uint8), _f=float_pixels(v)), name="fl.dcm")
    np.testing.assert_allclose(d.pixels, stretch(v))
    for bad in (np.nan, np.inf, -np.inf):
        v2 = v.copy()
        v2[0, 1] = bad
        d = decode_bytes(dicom_bytes(np.zeros((2, 2), np.uint8), _f=float_pixels(v2)), name="nan.dcm")
        assert d.pixels.tolist() == [[0.0, 0.0], [0.0, 0.0]]


# --- deflated transfer syntax -------------------------------------------------------------------
def padding(n: int) -> Callable[[Dataset], None]:
    """A private element of ``n`` zero bytes: the inflated dataset grows, the pixels do not."""

    def put(ds: Dataset) -> None:
        ds.add_new(0x00091010, "LO", "EDGE TEST")  # private creator of block 0x10
        ds.add_new(0x00091000 | 0x1000 | 0x01, "OB", b"\0" * n)

    return put


def meta_part(data: bytes) -> bytes:
    """Preamble, DICM and the file meta group: what precedes the deflated body."""
    from pydicom.filereader import _read_file_meta_info, read_preamble

    fp = io.BytesIO(data)
    read_preamble(fp, False)
    _read_file_meta_info(fp)
    return data[: fp.tell()]


def inflated_size(data: bytes) -> int:
    return len(zlib.decompress(data[len(meta_part(data)) :], -zlib.MAX_WBITS))


def test_deflated_dicom_decodes_to_its_values(radiograph):
    px = radiograph.astype(np.uint16) * 10
    d = decode_bytes(dicom_bytes(px, tsyntax=DeflatedExplicitVRLittleEndian, WindowCenter=1000, WindowWidth=801), name="dfl.dcm")
    np.testing.assert_allclose(d.pixels, linear_window(px.astype(np.float64), 1000, 801), atol=1e-9)


# built once at import: mutation runs fork per mutant after the import, so these are not rebuilt each time
PADDED = dicom_bytes(np.arange(16, dtype=np.uint8).reshape(4, 4), tsyntax=DeflatedExplicitVRLittleEndian, _p=padding(MB + 65536))
BOMB = dicom_bytes(np.zeros((4, 4), np.uint8), tsyntax=DeflatedExplicitVRLittleEndian, _p=padding(8 * MB))


def test_deflated_dicom_is_capped_at_the_budget_plus_one_megabyte_exactly():
    size = inflated_size(PADDED)  # a little over 1 MB: the cap is max_decoded_bytes + 1 MB
    d = decode_bytes(PADDED, name="pad.dcm", limits=Limits(max_decoded_bytes=size - MB))
    np.testing.assert_allclose(d.pixels, stretch(np.arange(16).reshape(4, 4)))
    error(
        PADDED,
        rf"deflated DICOM too large \(inflates past {(size - 1) // MB} MB: decompression bomb\)$",
        limits=Limits(max_decoded_bytes=size - MB - 1),
    )


def test_deflate_bomb_is_refused_in_small_chunks():
    # 8 MB of zeros inflates from about 8 KB; with a 256 KB budget the inflater must stop soon after 1.25 MB
    tracemalloc.start()
    try:
        limits = Limits(max_decoded_bytes=MB // 4)
        error(BOMB, r"deflated DICOM too large \(inflates past 1 MB: decompression bomb\)$", limits=limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 1 MB chunks: the output when it passes the 1.25 MB cap (2 MB) and the chunk just inflated (1 MB), about 3 MB;
    # inflating all of it at once would hold the 8 MB, 2 MB chunks would hold 4 MB
    assert peak < 3.5 * MB


def test_deflated_radiograph_over_a_megabyte_with_a_padding_byte_decodes(fracatlas):
    """The stream ends after more than one 1 MB chunk and a padding byte follows it (pydicom pads an
    odd-length stream to even). The inflater once looped forever there: past the end of the stream
    zlib keeps trailing bytes as the unconsumed tail."""
    import signal

    path = sorted((fracatlas / "test" / "not_fractured").glob("*.jpg"))[0]
    with Image.open(path) as im:
        grey = np.asarray(im.convert("L")).astype(np.uint16) * 16
    px = np.tile(grey, (2, 2))  # 16-bit, over 1 MB of pixels
    data = dicom_bytes(px, tsyntax=DeflatedExplicitVRLittleEndian)
    meta = meta_part(data)
    body = zlib.decompress(data[len(meta) :], -zlib.MAX_WBITS)
    assert len(body) > MB
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    padded = meta + c.compress(body) + c.flush() + b"\0"

    def stuck(*_a: object) -> None:
        raise TimeoutError("the inflater did not finish")

    old = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(60)
    try:
        d = decode_bytes(padded, name="big.dcm")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    np.testing.assert_allclose(d.pixels, stretch(px))


def test_corrupt_deflate_stream_is_a_named_error():
    data = dicom_bytes(np.zeros((4, 4), np.uint8), tsyntax=DeflatedExplicitVRLittleEndian)
    error(meta_part(data) + b"\xff" * 20, "deflated DICOM data is corrupt$")  # 0xff: an invalid deflate block type


# --- JPEG Extended 12-bit (imagecodecs) -------------------------------------------------------------
def jpeg_extended(frames: list[bytes] | None = None, bot: bool = True, fragments: int = 1) -> bytes:
    """pydicom's JPGExtended.dcm (one 12-bit frame), or the same header over ``frames`` (encapsulated,
    each frame in ``fragments`` fragments, with or without a Basic Offset Table)."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.encaps import encapsulate

    path = get_testdata_file("JPGExtended.dcm")
    if frames is None:
        return Path(path).read_bytes()
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate(frames, fragments_per_frame=fragments, has_bot=bot)
    ds.NumberOfFrames = len(frames)
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def jpeg_extended_frame() -> bytes:
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.encaps import generate_frames

    return next(generate_frames(pydicom.dcmread(get_testdata_file("JPGExtended.dcm")).PixelData, number_of_frames=1))


def test_jpeg_extended_12_bit_matches_pydicoms_reference_values():
    import pydicom

    from edge.core.dicom import _pixels

    stored = _pixels(pydicom.dcmread(io.BytesIO(jpeg_extended())), "JPGExtended.dcm", 1)
    # pydicom's pixel reference for this file (JPGE_16_12_1_0_1F_M2): arr[420, 140] == 244, arr[230, 120] == 95
    assert stored.shape == (1024, 256) and stored[420, 140] == 244 and stored[230, 120] == 95
    d = decode_bytes(jpeg_extended(), name="jpgext.dcm")
    np.testing.assert_allclose(d.pixels, stretch(stored))
    # the same 12-bit frame twice in a two-frame file: the frames are split, the second is picked on request
    frame = jpeg_extended_frame()
    two = decode_bytes(jpeg_extended([frame, frame]), name="two.dcm", frame=1)
    assert two.frames == 2
    np.testing.assert_allclose(two.pixels, d.pixels)
    # two fragments per frame and no offset table: only NumberOfFrames tells where a frame ends
    split = decode_bytes(jpeg_extended([frame, frame], bot=False, fragments=2), name="split.dcm", frame=0)
    assert split.frames == 2
    np.testing.assert_allclose(split.pixels, d.pixels)


def test_jpeg_extended_with_fewer_frames_than_declared_is_a_named_error():
    import pydicom

    frame = jpeg_extended_frame()
    ds = pydicom.dcmread(io.BytesIO(jpeg_extended([frame, frame])))
    ds.NumberOfFrames = 3
    buf = io.BytesIO()
    ds.save_as(buf)
    error(buf.getvalue(), "DICOM NumberOfFrames does not match the pixel data$")


def test_corrupt_jpeg_extended_frame_is_a_named_error():
    error(jpeg_extended([b"\xff\xd8" + b"\0" * 100]), r"DICOM pixel data cannot be decoded \(Jpeg8Error\)$")


def test_a_broken_8_bit_jpeg_extended_file_is_left_to_pydicom():
    # only 12-bit samples go to imagecodecs: an 8-bit file is pydicom's to decode, and here its decoders fail
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(get_testdata_file("JPGExtended.dcm"))
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = encapsulate([b"\xff\xd8" + b"\0" * 100])
    buf = io.BytesIO()
    ds.save_as(buf)
    error(buf.getvalue(), r"DICOM pixel data cannot be decoded \(RuntimeError\)$")  # imagecodecs would say Jpeg8Error


def test_jpeg_extended_without_imagecodecs_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # what `import imagecodecs` meets when it is not installed
    e = error(jpeg_extended(), r"no decoder installed for DICOM transfer syntax 1\.2\.840\.10008\.1\.2\.4\.51 \(12-bit JPEG\)$")
    assert e.hint == "install the DICOM decoders: pip install 'fracture-edge[dicom]'"


# --- pydicom kept quiet: its log records and warnings quote element values ---------------------------
def test_pydicom_logger_and_warnings_are_silenced():
    import logging
    import warnings

    from edge.core.dicom import _import_pydicom

    logger = logging.getLogger("pydicom")
    logger.setLevel(logging.DEBUG)  # what pydicom's own import leaves behind
    logger.addHandler(logging.StreamHandler())
    logger.propagate = True
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert _import_pydicom().__name__ == "pydicom"
        for module in ("pydicom", "pydicom.pixels.processing", "edge.core.dicom", "edge.core.dicomx", "edge.core.imageio"):
            warnings.warn_explicit("value 'DOE^JOHN'", UserWarning, "f.py", 1, module=module)
    assert sorted(str(w.message) + " " + str(w.filename) for w in seen) == ["value 'DOE^JOHN' f.py"] * 2
    assert not logger.isEnabledFor(logging.CRITICAL) and not logger.handlers and logger.propagate is False


# --- no value of the file in a warning or a log record ----------------------------------------
def test_no_dicom_value_reaches_a_warning_even_when_the_caller_shows_all_warnings(caplog):
    """In-process, with the caller's filters set to show every warning (as pytest, a notebook or
    `warnings.simplefilter("always")` after import do): pydicom's value-quoting warnings must not be
    raised at all, since a process-wide ignore filter is undone by any later filter change."""
    import contextlib
    import logging
    import warnings

    import test_hostile_decode as hostile

    import edge.core.dicom  # noqa: F401  the decoder is loaded (its filter installed) before the caller's change

    files = [hostile.dicom_bytes(**hostile.MALFORMED[case]) for case in sorted(hostile.MALFORMED)]
    # a fuzz find: a damaged length (20 -> 1213) makes the transfer syntax UID swallow the data set after it
    files.append(hostile.dicom_bytes(patch=(b"\x02\x00\x10\x00UI\x14\x00", b"\x02\x00\x10\x00UI\xbd\x04")))
    caplog.clear()  # writing the files above logs their values; only the decoding is under test
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        for data in files:
            with contextlib.suppress(ImageReadError):
                decode_bytes(data, name="bad.dcm")
    text = "\n".join(str(w.message) for w in shown) + caplog.text
    assert hostile.MARKER[:10] not in text and "abc" not in text and "slope!" not in text and "rows" not in text
    assert "Invalid value" not in text  # pydicom's value checks quote the value: not run at all

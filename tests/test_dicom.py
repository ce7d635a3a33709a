"""DICOM decoding on files the tests write with pydicom."""

import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from edge.core.errors import ImageReadError
from edge.core.imageio import read_image


def write_dicom(
    path, pixels: np.ndarray, photometric="MONOCHROME2", frames=1, slope=1.0, intercept=0.0, window=None, pixel_data=True
):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Test^Patient"
    ds.Modality = "CT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape[-2:]
    bits = 16 if pixels.dtype == np.uint16 else 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    if frames > 1:
        ds.NumberOfFrames = frames
    if pixel_data:
        ds.PixelData = pixels.tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def test_monochrome2_8bit(tmp_path):
    px = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (8, 1))
    d = read_image(write_dicom(tmp_path / "a.dcm", px))
    assert d.kind == "dicom" and d.pixels.shape == (8, 16)
    assert d.pixels[0, 0] == 0 and d.pixels[0, -1] == 255  # min-max to 0..255 without a window


def test_monochrome1_16bit_is_inverted_with_rescale_and_window(tmp_path):
    px = np.tile(np.linspace(0, 4000, 16).astype(np.uint16), (8, 1))
    # stored 0..4000, rescaled to -1000..1000 HU; window centre 0, width 1000 -> -500..500
    d = read_image(write_dicom(tmp_path / "b.dcm", px, "MONOCHROME1", slope=0.5, intercept=-1000, window=(0, 1000)))
    row = d.pixels[0]
    assert row[0] == pytest.approx(255.0)  # -1000 HU: below the window -> black -> inverted to white
    assert row[-1] == pytest.approx(0.0)
    mid = np.argmin(np.abs(np.linspace(0, 4000, 16) * 0.5 - 1000))  # 0 HU
    assert 100 < row[mid] < 155


def test_multiframe_picks_middle_or_asked_frame(tmp_path):
    px = np.stack([np.full((4, 4), v, np.uint8) for v in (10, 20, 30)])
    px[:, 0, 0] = 0  # give each frame a range
    path = write_dicom(tmp_path / "c.dcm", px, frames=3)
    d = read_image(path)
    assert d.frames == 3
    assert read_image(path, frame=0).pixels[1, 1] == 255
    with pytest.raises(ImageReadError, match="frame 5 out of range"):
        read_image(path, frame=5)


def test_dicom_without_pixel_data_is_a_clear_error(tmp_path):
    path = write_dicom(tmp_path / "d.dcm", np.zeros((4, 4), np.uint8), pixel_data=False)
    with pytest.raises(ImageReadError, match="no pixel data") as e:
        read_image(path)
    assert "d.dcm" in e.value.line()

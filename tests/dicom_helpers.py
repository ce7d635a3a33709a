"""A DICOM file written by pydicom for tests: grey, colour (both planar configurations) or frames,
with any field set, deleted or rewritten afterwards (hostile and contract tests build theirs here)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def dicom_bytes(
    px: np.ndarray,
    photometric: str = "MONOCHROME2",
    planar: int | None = None,
    tsyntax: str = ExplicitVRLittleEndian,
    **fields: Any,
) -> bytes:
    """``px``: HxW grey, HxWx3 colour (PlanarConfiguration 0), 3xHxW colour (planar=1) or FxHxW frames.
    ``fields``: set, deleted (None) or applied (a callable taking the dataset) after the defaults."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = tsyntax
    ds = FileDataset("x", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PhotometricInterpretation = photometric
    colour = photometric.startswith(("RGB", "YBR"))
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = planar or 0
        ds.Rows, ds.Columns = px.shape[1:3] if planar == 1 else px.shape[:2]
    else:
        ds.Rows, ds.Columns = px.shape[-2:]
    bits = px.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 1 if px.dtype.kind == "i" else 0
    ds.PixelData = px.tobytes()
    for k, v in fields.items():
        if v is None:
            del ds[k]
        elif callable(v):
            v(ds)
        else:
            setattr(ds, k, v)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()

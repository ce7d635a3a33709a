"""Decoding budgets: what an image may cost in memory, checked from its header before decoding.

A 69-byte PNG can declare 1 x 50,000,000 pixels and a 1 MB deflated DICOM can inflate to
gigabytes, so no decoder is trusted with a declared size: the cost in decoded bytes
(width x height x channels x bytes per sample x frames) is computed from the header first.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ImageReadError

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    # a 4300x3500 16-bit DR detector image is 29 MB decoded; 64 MB leaves room and refuses a
    # 7000x7000 16-bit bomb (98 MB). Every later copy (float, resize) is a multiple of this.
    max_decoded_bytes: int = 64 * MB
    max_pixels: int = 50_000_000  # width x height x frames
    max_side: int = 16_384  # no radiograph is wider; stops 1 x 50,000,000 strips

    def with_pixels(self, max_pixels: int | None) -> Limits:
        if max_pixels is None:
            return self
        return Limits(self.max_decoded_bytes, max_pixels, self.max_side)


DEFAULT_LIMITS = Limits()


def check_budget(
    name: str,
    width: int,
    height: int,
    channels: int = 1,
    bytes_per_sample: int = 1,
    frames: int = 1,
    limits: Limits = DEFAULT_LIMITS,
) -> int:
    """Raise ImageReadError (message contains 'too large') unless the image fits; return its decoded bytes."""
    if width <= 0 or height <= 0 or frames <= 0 or channels <= 0 or bytes_per_sample <= 0:
        raise ImageReadError(f"invalid image size ({width}x{height}, {frames} frames)", name)
    if max(width, height) > limits.max_side:
        raise ImageReadError(f"image too large ({width}x{height} pixels, at most {limits.max_side} per side)", name)
    pixels = width * height * frames
    if pixels > limits.max_pixels:
        raise ImageReadError(f"image too large ({width}x{height}x{frames} pixels, limit {limits.max_pixels})", name)
    cost = pixels * channels * bytes_per_sample
    if cost > limits.max_decoded_bytes:
        raise ImageReadError(f"image too large ({cost // MB} MB decoded, limit {limits.max_decoded_bytes // MB} MB)", name)
    return cost

"""Mutation fuzzing of the decoders: every outcome is a decoded image or an ImageReadError.
Bounded counts in the default run (EDGE_FUZZ_N mutations per format, default 200), larger ones in
the `heavy` run (EDGE_FUZZ_HEAVY_N, default 2,000, other seeds); the server side is fuzzed in
tests/test_hostile_server.py."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_hostile_decode import dicom_bytes

from edge.core.errors import ImageReadError
from edge.core.imageio import Decoded, decode_bytes

N = int(os.environ.get("EDGE_FUZZ_N", "200"))


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Bit flips, byte overwrites with boundary values, cuts, duplications and insertions."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(6)
        i = rng.randrange(len(b)) if b else 0
        if op == 0 and b:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[i] = rng.choice([0x00, 0xFF, 0x7F, 0x80, 0x01])
        elif op == 2 and len(b) > 4:  # a 16/32-bit field set to an extreme (sizes, lengths, counts)
            b[i : i + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff", b"\x00\x01\x00\x00"])
        elif op == 3:
            b = b[: rng.randrange(len(b) + 1)]
        elif op == 4 and b:
            j = rng.randrange(len(b))
            b[j:j] = b[i : i + rng.randint(1, 64)]
        else:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(b)


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk's CRC so a mutation reaches libpng's header, zlib and row checks
    instead of stopping at the first CRC mismatch (a damaged length ends the walk)."""
    import struct
    import zlib

    b, i = bytearray(data), 8
    while i + 12 <= len(b):
        n = struct.unpack(">I", b[i : i + 4])[0]
        if i + 12 + n > len(b):
            break
        b[i + 8 + n : i + 12 + n] = struct.pack(">I", zlib.crc32(b[i + 4 : i + 8 + n]))
        i += 12 + n
    return bytes(b)


def seeds(fracatlas: Path) -> dict[str, bytes]:
    jpg = next(p for p in sorted((fracatlas / "test" / "fractured").glob("*.jpg"))).read_bytes()
    small = Image.open(io.BytesIO(jpg)).convert("L").resize((64, 80))
    png8, png16 = io.BytesIO(), io.BytesIO()
    small.save(png8, "PNG")
    Image.fromarray(np.asarray(small).astype(np.uint16) * 257).save(png16, "PNG")
    jpg_small = io.BytesIO()
    small.save(jpg_small, "JPEG", quality=90)
    return {
        "jpeg": jpg_small.getvalue(),
        "png": png8.getvalue(),
        "png16": png16.getvalue(),
        "dicom": dicom_bytes(np.asarray(small).astype(np.uint16) * 16, WindowCenter=2000, WindowWidth=4000),
    }


def check(data: bytes) -> str:
    try:
        d = decode_bytes(data, name="fuzz")
    except ImageReadError as e:
        assert "\n" not in e.line()
        return "refused"
    assert isinstance(d, Decoded) and d.pixels.ndim in (2, 3) and d.pixels.size > 0
    return "decoded"


def fuzz_format(fracatlas: Path, fmt: str, n: int, seed: int) -> dict[str, int]:
    data = seeds(fracatlas)[fmt]
    rng = random.Random(f"{fmt}-{seed}")
    outcomes = {"decoded": 0, "refused": 0}
    for i in range(n):
        m = mutate(data, rng)
        outcomes[check(fix_png_crcs(m) if fmt.startswith("png") and i % 2 else m)] += 1
    assert outcomes["refused"] > 0  # the mutations do reach the error paths
    return outcomes


FORMATS = ["jpeg", "png", "png16", "dicom"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_mutated_files_decode_or_fail_cleanly(fracatlas, fmt):
    fuzz_format(fracatlas, fmt, N, seed=0)


@pytest.mark.heavy
@pytest.mark.parametrize("fmt", FORMATS)
def test_mutated_files_decode_or_fail_cleanly_heavy(fracatlas, fmt):
    """The CI heavy stage: EDGE_FUZZ_HEAVY_N (default 2,000) other mutations per format."""
    out = fuzz_format(fracatlas, fmt, int(os.environ.get("EDGE_FUZZ_HEAVY_N", "2000")), seed=1)
    print(f"{fmt}: {out}")
    assert out["decoded"] > 0  # some mutations get past the checksums into the decoders proper


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=4096),
    st.sampled_from([b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\0\0\0\0WEBP", b"\0" * 128 + b"DICM", b"BM", b"II*\x00"]),
)
def test_any_bytes_behind_any_magic_decode_or_fail_cleanly(body, magic):
    check(magic + body)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 70000), st.integers(1, 70000), st.sampled_from([1, 8, 16]))
def test_declared_png_sizes_never_allocate_past_the_budget(width, height, depth):
    from test_hostile_decode import png_header_only

    assert check(png_header_only(width, height, depth)) in ("refused", "decoded")

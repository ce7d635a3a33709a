"""No native library in a toolkit process takes part of a library from TensorFlow and part from its own copy.

TensorFlow loads with RTLD_GLOBAL and exports its own zlib, zstd, BoringSSL and sqlite. A library loaded
after it resolves each import to TensorFlow's copy where the name exists there and to its own dependency
where it does not: two implementations (two allocators) on one object. The dynamic linker's own record
(LD_DEBUG=bindings) of a fresh process that loads TensorFlow the toolkit's way and then what the suite
and the tools load after it (tf-keras-vis, albumentations, pydicom with gdcm, Pillow, OpenCV, h5py, LiteRT)
must show every such library bound whole to one provider. See edge/core/_tf.py (PRELOAD_BEFORE_TF).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# symbol families whose objects must never cross implementations
FAMILIES = {
    "zlib": re.compile(r"^(deflate|inflate|crc32|adler32|compress|uncompress|zlibVersion|zError|gz|get_crc_table)"),
    "zstd": re.compile(r"^ZSTD_"),
    "openssl": re.compile(r"^(SSL_|CRYPTO_|EVP_|OPENSSL_|ERR_|BIO_|X509|RSA_|EC_KEY|BN_)"),
    "sqlite": re.compile(r"^sqlite3_"),
    # C++ libraries TensorFlow exports and LiteRT carries its own (other) versions of: a class of one version
    # handled by code of another corrupts memory without any allocator mismatch
    "tflite": re.compile(r"^(_ZNK?6tflite|TfLite|LiteRt)"),
    "absl": re.compile(r"^_ZNK?4absl"),
    "protobuf": re.compile(r"^_ZNK?6google8protobuf"),
    "flatbuffers": re.compile(r"^_ZNK?11flatbuffers"),
}
BINDING = re.compile(r"binding file (\S+) \[\d+\] to (\S+) \[\d+\]: normal symbol `([^']+)'")

SCRIPT = """
import io
import numpy as np
from edge.core._tf import keras, tf   # the toolkit's way in: the preloads, then TensorFlow
import sqlite3, tf_keras_vis.gradcam, albumentations, pydicom, cv2, h5py  # each after TensorFlow, unless preloaded
from PIL import Image
try:
    import gdcm
except ImportError:
    pass
ok, png = cv2.imencode(".png", np.arange(256, dtype=np.uint8).reshape(16, 16))
cv2.imdecode(png, cv2.IMREAD_UNCHANGED)
buf = io.BytesIO(); Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, "PNG"); Image.open(buf).load()
sqlite3.connect(":memory:").execute("select 1").fetchall()
m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3), keras.layers.GlobalAveragePooling2D()])
m.save_weights({out!r})
m.load_weights({out!r})
from ai_edge_litert.interpreter import Interpreter  # the runtime the toolkit runs .tflite files with
it = Interpreter(model_path="android_demo/app/src/main/assets/fracture_int8.tflite", num_threads=1)
it.allocate_tensors()
it.invoke()
print("done")
"""


def _providers(log_dir: Path) -> dict[tuple[str, str], dict[str, list[str]]]:
    """(library, family) -> provider -> symbols; TensorFlow's libraries count as one provider."""
    got: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))

    def who(path: str) -> str:
        if "/tensorflow/" in path:
            return "tensorflow"
        # OpenSSL is two files of one build (libssl, libcrypto): one provider per copy (its folder and version)
        m = re.match(r"lib(?:ssl|crypto)(?:-[0-9a-f]+)?\.so\.(.+)$", Path(path).name)
        return f"openssl {m.group(1)} in {Path(path).parent}" if m else Path(path).name

    for f in log_dir.iterdir():
        for line in f.read_text(errors="replace").splitlines():
            m = BINDING.search(line)
            if not m:
                continue
            src, dst, sym = m.groups()
            if who(src) == "tensorflow":  # TensorFlow binding to itself across its libraries: one build
                continue
            for fam, rx in FAMILIES.items():
                if rx.match(sym):
                    got[(Path(src).name, fam)][who(dst)].append(sym)
    return got


def _splits(tmp_path: Path, first: str) -> dict:
    logs = tmp_path / "ld"
    logs.mkdir()
    env = dict(os.environ, LD_DEBUG="bindings", LD_DEBUG_OUTPUT=str(logs / "b"))
    code = first + SCRIPT.format(out=str(tmp_path / "w.weights.h5"))
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "done" in r.stdout, r.stderr[-2000:]
    got = _providers(logs)
    # the record is read: OpenCV's and Pillow's zlib imports are in it
    assert ("cv2.abi3.so", "zlib") in got and any(k[0].startswith("_imaging") for k in got), sorted(got)[:20]
    assert ("libLiteRt.so", "tflite") in got, sorted(got)[:20]  # LiteRT binding its own C API: the record has it
    return {k: {p: sorted(s)[:4] for p, s in v.items()} for k, v in got.items() if len(v) > 1}


@pytest.mark.slow
def test_no_library_is_split_between_tensorflow_and_its_own_copy(tmp_path):
    assert _splits(tmp_path, "") == {}


@pytest.mark.slow
def test_the_check_sees_the_split_when_tensorflow_loads_first(tmp_path):
    # a script that imports TensorFlow itself before anything else: on this stack OpenCV's bundled OpenSSL, its
    # ffmpeg, gdcm's OpenSSL and zlib and the system sqlite come out split (which of them depends on the wheels)
    split = _splits(tmp_path, "import tensorflow\n")
    assert split, "TensorFlow loaded first and nothing split: the check would not see the hazard"

"""Read a PyTorch state dict (``.pth``) as numpy arrays, without torch and without running code.

A ``.pth`` file is pickle, and unpickling runs whatever callables the pickle names. This reader
admits only what a state dict of plain tensors needs: ``collections.OrderedDict``, torch's
tensor-rebuild function and the storage classes (turned into numpy dtypes here). Anything else,
``os.system`` or a ``torch.nn.Module``, is refused by name before it can be called: the same
stance as the bundle's weights-only loading (edge.core.weights).

Two layouts exist:

* legacy (torch < 1.6): five pickles in a row (magic number, protocol version, system info,
  the state dict with storages as persistent ids, the list of storage keys), then each storage
  as an int64 element count followed by its raw little-endian bytes, in the listed order;
* zip (torch >= 1.6): ``<root>/data.pkl`` plus one ``<root>/data/<key>`` entry per storage.

Sizes are checked against the file before anything is allocated: a declared size is never trusted.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EdgeError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
MAX_TENSORS = 10_000

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _Storage:
    """A storage named by the pickle; its bytes are attached once the data section is read."""

    def __init__(self, key: str, dtype: type, numel: int):
        self.key, self.dtype, self.numel = key, np.dtype(dtype), int(numel)
        self.array: np.ndarray | None = None


class _Tensor:
    """A view into a storage: filled in after every storage has been read."""

    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]):
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)

    def to_numpy(self, where: Path) -> np.ndarray:
        data = self.storage.array
        if data is None:
            raise EdgeError(f"tensor refers to storage '{self.storage.key}' that the file does not hold", where)
        if any(s < 0 for s in self.size) or any(s < 0 for s in self.stride) or self.offset < 0:
            raise EdgeError("tensor with a negative size, stride or offset", where)
        if len(self.stride) != len(self.size) or math.prod(self.size) > len(data):
            # a zero stride lets a tiny storage declare a huge tensor; a state dict's tensors never repeat elements
            raise EdgeError(f"tensor of size {self.size} declares more elements than its storage holds", where)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True)) if all(self.size) else -1
        if last >= len(data):
            raise EdgeError(f"tensor reaches past its storage '{self.storage.key}'", where)
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=[s * item for s in self.stride], writeable=False
        )
        return np.array(view, order="C")  # a copy: C-contiguous, owns its memory


def _rebuild_tensor_v2(storage: _Storage, offset: int, size: Any, stride: Any, *_: Any) -> _Tensor:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("tensor without a storage")
    return _Tensor(storage, offset, tuple(size), tuple(stride))


class _StateUnpickler(pickle.Unpickler):
    """Admits OrderedDict, the tensor rebuild function and storage classes; refuses any other global."""

    def __init__(self, f: Any, storages: dict[str, _Storage]):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return name  # a marker; persistent_load turns it into a dtype
        raise pickle.UnpicklingError(f"refused to load '{module}.{name}' (only plain tensors are read)")

    def persistent_load(self, pid: Any) -> _Storage:
        # legacy: ('storage', type, key, location, numel, view_metadata); zip: ('storage', type, key, location, numel)
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and pid[1] in _STORAGE_DTYPES):
            raise pickle.UnpicklingError("unsupported persistent id (not a plain storage)")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        key = str(pid[2])
        if key not in self.storages:
            if len(self.storages) >= MAX_TENSORS:
                raise pickle.UnpicklingError("too many storages")
            self.storages[key] = _Storage(key, _STORAGE_DTYPES[pid[1]], int(pid[4]))
        return self.storages[key]


def _tensors(obj: Any, where: Path) -> dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise EdgeError("the checkpoint is not a state dict of tensors", where)
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):  # training checkpoints wrap it
        obj = obj["state_dict"]
    out = {}
    for k, v in obj.items():
        if not isinstance(v, _Tensor):
            raise EdgeError(f"entry '{k}' of the state dict is not a tensor", where)
        out[str(k)] = v.to_numpy(where)
    return out


def _read_legacy(raw: bytes, where: Path) -> dict[str, np.ndarray]:
    f = io.BytesIO(raw)
    storages: dict[str, _Storage] = {}
    if _StateUnpickler(f, storages).load() != LEGACY_MAGIC:
        raise EdgeError("not a PyTorch checkpoint (magic number)", where)
    if _StateUnpickler(f, storages).load() != LEGACY_PROTOCOL:
        raise EdgeError("unsupported PyTorch legacy protocol version", where)
    info = _StateUnpickler(f, storages).load()
    if not isinstance(info, dict) or not info.get("little_endian", False):
        raise EdgeError("big-endian PyTorch checkpoints are not supported", where)
    obj = _StateUnpickler(f, storages).load()
    keys = _StateUnpickler(f, storages).load()
    if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
        raise EdgeError("the checkpoint's storage list does not match its tensors", where)
    for key in map(str, keys):
        s = storages[key]
        head = f.read(8)
        if len(head) != 8:
            raise EdgeError("checkpoint is truncated (storage header)", where)
        (numel,) = struct.unpack("<q", head)
        nbytes = numel * s.dtype.itemsize
        if numel != s.numel or nbytes > len(raw) - f.tell():
            raise EdgeError(f"storage '{key}' declares {numel} elements; the file does not hold them", where)
        s.array = np.frombuffer(f.read(nbytes), dtype=s.dtype.newbyteorder("<"))
    return _tensors(obj, where)


def _read_zip(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise EdgeError("zip checkpoint without exactly one data.pkl", path)
        root = pkl[0][: -len("data.pkl")]
        storages: dict[str, _Storage] = {}
        obj = _StateUnpickler(io.BytesIO(z.read(pkl[0])), storages).load()
        for key, s in storages.items():
            name = f"{root}data/{key}"
            try:
                info = z.getinfo(name)
            except KeyError:
                raise EdgeError(f"zip checkpoint lacks storage '{key}'", path) from None
            if info.file_size != s.numel * s.dtype.itemsize:  # checked before the entry is inflated
                raise EdgeError(f"storage '{key}' has {info.file_size} bytes, not {s.numel} elements", path)
            s.array = np.frombuffer(z.read(name), dtype=s.dtype.newbyteorder("<"))
    return _tensors(obj, path)


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Parameter name -> numpy array, from either checkpoint layout; EdgeError for anything else."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        return _read_legacy(path.read_bytes(), path)
    except (pickle.UnpicklingError, EOFError, ValueError, zipfile.BadZipFile, struct.error) as e:
        raise EdgeError(f"not a readable PyTorch state dict ({e})", path) from None

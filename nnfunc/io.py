"""Checkpoints: save any pytree to one ``.npz`` file and load it back exactly.

The file holds each array leaf as ``leaf_<i>.npy`` and the tree's structure
as JSON (``__nnfunc__``, stored as bytes) with a format version: containers
(``dict``, ``list``, ``tuple``, ``NamedTuple`` by type name, ``None``),
Python scalars (``int``, ``float``, ``bool``, ``str`` keys only) and, for
each array, its dtype and shape. Arrays keep their dtype and shape exactly
(0-d, empty, ``bool``, integer and float arrays, random keys).

Saving is atomic: the data goes to a temporary file in the same directory,
is flushed to disk, and then replaces the target in one ``os.replace``, so a
crash mid-write leaves the previous checkpoint intact. Loading never
unpickles (``allow_pickle=False``) and checks the JSON against the arrays.

Without ``like=`` a ``NamedTuple`` comes back as a plain ``tuple`` (its type
name is kept in the file, for error messages); with ``like=`` (a template
tree such as ``model.init(...)[1]`` or ``opt.init(params)``) the types are
restored and every leaf's shape and dtype is checked against the template.

>>> import os, tempfile
>>> import numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
>>> save(path, {"w": np.ones((2, 3), np.float32), "epoch": 3})
>>> restored = load(path)
>>> restored["w"].dtype, restored["epoch"]
(dtype('float32'), 3)
"""

from __future__ import annotations

import contextlib
import io as _io
import json
import os
import tempfile
import zipfile
from typing import Any

import numpy as np

from nnfunc import tree
from nnfunc._validate import describe
from nnfunc.typing import PyTree

__all__ = ["FORMAT_VERSION", "load", "save"]

FORMAT_VERSION = 1
_META = "__nnfunc__"
_SCALARS = (bool, int, float)


def _encode(node: Any, path: tree.Path, arrays: list[np.ndarray]) -> Any:
    """The JSON description of ``node``; array leaves are appended to ``arrays``."""
    if node is None:
        return {"t": "none"}
    if isinstance(node, (np.ndarray, np.generic)):
        arr = np.asarray(node)
        if arr.dtype.kind not in "biufc":
            raise TypeError(f"io.save: {tree.keystr(path, 'tree')} must be a numeric or bool "
                            f"array; got dtype {arr.dtype}")
        arrays.append(arr)
        return {"t": "array" if isinstance(node, np.ndarray) else "scalar",
                "i": len(arrays) - 1, "dtype": arr.dtype.str, "shape": list(arr.shape)}
    if isinstance(node, _SCALARS):
        return {"t": type(node).__name__, "v": node if not isinstance(node, float)
                else repr(node)}
    if isinstance(node, dict):
        for k in node:
            if not isinstance(k, str):
                raise TypeError(f"io.save: {tree.keystr(path, 'tree')} has a non-str key "
                                f"{k!r}; keys must be str")
        return {"t": "dict", "c": {k: _encode(node[k], (*path, k), arrays)
                                   for k in sorted(node)}}
    if isinstance(node, tuple) and hasattr(type(node), "_fields"):
        named: Any = type(node)
        fields = list(named._fields)
        return {"t": "namedtuple", "name": type(node).__name__, "fields": fields,
                "c": [_encode(v, (*path, tree.Field(f)), arrays) for f, v in zip(fields, node)]}
    if isinstance(node, (list, tuple)):
        return {"t": type(node).__name__,
                "c": [_encode(v, (*path, i), arrays) for i, v in enumerate(node)]}
    raise TypeError(f"io.save: {tree.keystr(path, 'tree')} must be an array, a number, None "
                    f"or a dict/list/tuple/NamedTuple; got {describe(node)}")


def save(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` (any pytree of arrays and numbers) to ``path`` atomically.

    Raises:
        TypeError: a leaf that is not an array, a number or ``None`` (its path
            is named), or a non-``str`` dict key.
        OSError: if the directory cannot be written.
    """
    arrays: list[np.ndarray] = []
    meta = {"format": "nnfunc-checkpoint", "version": FORMAT_VERSION,
            "tree": _encode(data, (), arrays)}
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=".nnfunc-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            _write(f, meta, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where possible
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _write(f: Any, meta: dict[str, Any], arrays: list[np.ndarray]) -> None:
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(_META + ".npy", _npy_bytes(np.frombuffer(json.dumps(meta).encode(),
                                                            np.uint8)))
        for i, arr in enumerate(arrays):
            z.writestr(f"leaf_{i}.npy", _npy_bytes(arr))


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = _io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


class _Reader:
    def __init__(self, path: str, files: Any) -> None:
        self.path, self.files = path, files

    def array(self, spec: dict[str, Any], where: str) -> np.ndarray:
        name = f"leaf_{spec['i']}"
        if name not in self.files.files:
            raise ValueError(f"io.load: {self.path}: {where} refers to a missing array {name}")
        arr: np.ndarray = self.files[name]
        if arr.dtype.str != spec["dtype"] or list(arr.shape) != spec["shape"]:
            raise ValueError(f"io.load: {self.path}: {where} is recorded as {spec['dtype']} "
                             f"{tuple(spec['shape'])} but stored as {arr.dtype.str} "
                             f"{arr.shape}")
        return arr


def _decode(spec: Any, path: tree.Path, reader: _Reader) -> Any:
    where = tree.keystr(path, "tree")
    if not isinstance(spec, dict) or "t" not in spec:
        raise ValueError(f"io.load: {reader.path}: malformed structure at {where}")
    t = spec["t"]
    if t == "none":
        return None
    if t == "array":
        return reader.array(spec, where)
    if t == "scalar":
        return reader.array(spec, where)[()]
    if t in ("bool", "int"):
        return {"bool": bool, "int": int}[t](spec["v"])
    if t == "float":
        return float(spec["v"])
    if t == "dict":
        return {k: _decode(v, (*path, k), reader) for k, v in spec["c"].items()}
    if t in ("list", "tuple", "namedtuple"):
        kids = [_decode(v, (*path, i), reader) for i, v in enumerate(spec["c"])]
        return kids if t == "list" else tuple(kids)
    raise ValueError(f"io.load: {reader.path}: unknown node type {t!r} at {where}")


def _conform(got: Any, like: Any, path: tree.Path, source: str) -> Any:
    """``got`` rebuilt with ``like``'s container types; shapes and dtypes checked."""
    where = tree.keystr(path, "tree")
    if like is None:
        if got is not None:
            raise ValueError(f"io.load: {where} is {describe(got)} in {source} but None in like")
        return None
    if isinstance(like, dict):
        if not isinstance(got, dict) or sorted(got) != sorted(like):
            keys = sorted(got) if isinstance(got, dict) else describe(got)
            raise ValueError(f"io.load: {where} has keys {keys} in {source} but "
                             f"{sorted(like)} in like")
        return {k: _conform(got[k], like[k], (*path, k), source) for k in like}
    if isinstance(like, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(like):
            size = len(got) if isinstance(got, (list, tuple)) else describe(got)
            raise ValueError(f"io.load: {where} has {size} entries in {source} but "
                             f"{len(like)} in like")
        named = hasattr(type(like), "_fields")
        kids = [_conform(g, lk, (*path, tree.Field(f) if named else i), source)
                for i, (g, lk, f) in enumerate(zip(got, like, getattr(type(like), "_fields",
                                                                        like)))]
        if named:
            return type(like)(*kids)
        return kids if isinstance(like, list) else tuple(kids)
    if isinstance(like, (np.ndarray, np.generic)):
        arr = np.asarray(got) if isinstance(got, (np.ndarray, np.generic)) else None
        if arr is None or arr.shape != np.shape(like) or arr.dtype != like.dtype:
            have = f"{arr.dtype} {arr.shape}" if arr is not None else describe(got)
            raise ValueError(f"io.load: {where} is {have} in {source} but "
                             f"{like.dtype} {np.shape(like)} in like")
        return got
    if isinstance(like, _SCALARS) and type(got) is not type(like):
        raise ValueError(f"io.load: {where} is {describe(got)} in {source} but "
                         f"{type(like).__name__} in like")
    return got


def load(path: str | os.PathLike[str], like: PyTree = None) -> Any:
    """Read a pytree written by :func:`save`.

    Args:
        path: the checkpoint file.
        like: optional template; restores ``NamedTuple`` types and checks
            that structure, shapes and dtypes match.

    Raises:
        ValueError: not an nnfunc checkpoint, an unknown format version, a
            damaged file, or a mismatch with ``like`` (naming the path, e.g.
            ``tree[0].w``, and both shapes).
        FileNotFoundError: if ``path`` does not exist.
    """
    source = os.fspath(path)
    try:
        files = np.load(source, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"io.load: {source} is not a readable checkpoint: {err}") from None
    with files:
        if not isinstance(files, np.lib.npyio.NpzFile) or _META not in files.files:
            raise ValueError(f"io.load: {source} is not an nnfunc checkpoint (no {_META})")
        try:
            meta = json.loads(bytes(files[_META]).decode())
        except (ValueError, UnicodeDecodeError, zipfile.BadZipFile) as err:
            raise ValueError(f"io.load: {source} has a damaged structure record: {err}") \
                from None
        if meta.get("format") != "nnfunc-checkpoint" or meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"io.load: {source} has format {meta.get('format')!r} version "
                             f"{meta.get('version')!r}; this nnfunc reads version "
                             f"{FORMAT_VERSION}")
        try:
            data = _decode(meta["tree"], (), _Reader(source, files))
        except (zipfile.BadZipFile, OSError, EOFError, KeyError) as err:
            raise ValueError(f"io.load: {source} is damaged: {err!r}") from None
    return data if like is None else _conform(data, like, (), source)

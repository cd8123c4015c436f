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
import errno
import io as _io
import json
import math
import os
import secrets
import stat
import zipfile
import zlib
from typing import Any

import numpy as np

from nnfunc import tree
from nnfunc._validate import describe, fail, type_fail
from nnfunc.typing import PyTree

__all__ = ["FORMAT_VERSION", "load", "save"]

FORMAT_VERSION = 1
_META = "__nnfunc__"
_SCALARS = (bool, int, float)
_MAX_DEPTH = 200
"""The deepest nesting of containers a checkpoint may hold (far beyond any model's)."""


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


def _path(component: str, path: Any) -> str:
    """``path`` as a ``str``, or a clear ``TypeError``."""
    if not isinstance(path, (str, os.PathLike)):
        raise type_fail(component, "path", "must be a str or os.PathLike", describe(path))
    target = os.fspath(path)
    if not isinstance(target, str):
        raise type_fail(component, "path", "must be a str path", describe(target))
    return target


def _depth_checked(node: Any, depth: int = 0) -> None:
    """Raise unless ``node`` nests at most :data:`_MAX_DEPTH` containers deep."""
    if depth > _MAX_DEPTH:
        raise fail("io.save", "data", f"must nest at most {_MAX_DEPTH} containers deep",
                   "a deeper tree")
    if isinstance(node, dict):
        for v in node.values():
            _depth_checked(v, depth + 1)
    elif isinstance(node, (list, tuple)):
        for v in node:
            _depth_checked(v, depth + 1)


def save(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` (any pytree of arrays and numbers) to ``path`` atomically.

    A new file gets the permissions any newly created file gets (``0o666``
    less the umask); a file that is replaced keeps its permissions.

    Raises:
        TypeError: a leaf that is not an array, a number or ``None`` (its path
            is named), a non-``str`` dict key, or a ``path`` that is not a path.
        ValueError: a tree nested more than 200 containers deep.
        OSError: if the file cannot be written (the message names ``path``).
    """
    target = _path("io.save", path)
    _depth_checked(data)
    arrays: list[np.ndarray] = []
    meta = {"format": "nnfunc-checkpoint", "version": FORMAT_VERSION,
            "tree": _encode(data, (), arrays)}
    directory = os.path.dirname(os.path.abspath(target))
    try:
        if os.path.isdir(target):
            raise IsADirectoryError(errno.EISDIR, "is a directory")
        fd, tmp = _create_temp(directory)
    except OSError as err:
        raise _save_error(err, target) from err
    try:
        with os.fdopen(fd, "wb") as f:
            _write(f, meta, arrays)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):  # a replaced file keeps its permissions
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise _save_error(err, target) from err
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where possible
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _create_temp(directory: str) -> tuple[int, str]:
    """A new file in ``directory`` opened for writing, created with mode ``0o666`` so
    the umask applies (``tempfile.mkstemp`` would make it ``0o600``)."""
    while True:
        tmp = os.path.join(directory, f".nnfunc-{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def _save_error(err: OSError, target: str) -> OSError:
    """``err`` reworded to name the target, not the temporary file."""
    reason = err.strerror or str(err)
    return type(err)(err.errno, f"io.save: cannot write {target}: {reason}", target)


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


class _DamagedError(Exception):
    """A checkpoint's structure record or arrays disagree (worded by :func:`load`)."""

    def __init__(self, where: str, expected: str, got: object) -> None:
        super().__init__(where, expected, got)
        self.where, self.expected, self.got = where, expected, got


def _read_member(archive: zipfile.ZipFile, name: str, dtype: np.dtype[Any] | None,
                 shape: tuple[int, ...] | None, where: str) -> np.ndarray:
    """The array stored as ``name``, its header checked against the record (and the
    member's size) before anything is allocated."""
    try:
        info = archive.getinfo(name + ".npy")
    except KeyError:
        raise _DamagedError(where, "must refer to an array stored in the file",
                       f"a missing array {name}") from None
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        got_shape, _fortran, got_dtype = read_header(f)
        header = f.tell()
        if got_dtype.hasobject or got_dtype.kind not in "biufc":
            raise _DamagedError(where, "must be stored as a numeric or bool array (nnfunc never "
                           "unpickles)", f"dtype {got_dtype}")
        if (dtype is not None and got_dtype != dtype) or (shape is not None
                                                          and got_shape != shape):
            raise _DamagedError(where, f"must be stored as recorded, {dtype} {shape}",
                           f"{got_dtype} {got_shape}")
        nbytes = math.prod(got_shape) * got_dtype.itemsize
        if info.file_size - header != nbytes:
            raise _DamagedError(where, f"must hold {nbytes} bytes of data for {got_dtype} "
                           f"{got_shape}", f"{info.file_size - header} bytes")
        f.seek(0)
        arr: np.ndarray = np.lib.format.read_array(f, allow_pickle=False)
    return arr


_KINDS = frozenset({"none", "array", "scalar", "bool", "int", "float", "dict", "list", "tuple",
                    "namedtuple"})


def _field(spec: dict[str, Any], key: str, kind: type, expected: str, where: str) -> Any:
    """``spec[key]``, which must be of type ``kind`` (a ``bool`` is not an ``int`` here)."""
    value = spec.get(key, _MISSING)
    ok = (type(value) is bool) if kind is bool else (
        isinstance(value, kind) and not isinstance(value, bool))
    if not ok:
        got = "nothing" if value is _MISSING else describe(value)
        raise _DamagedError(f"{where}[{key!r}]", f"must be {expected}", got)
    return value


_MISSING = object()


def _array_spec(spec: dict[str, Any], where: str) -> tuple[int, np.dtype[Any], tuple[int, ...]]:
    index = _field(spec, "i", int, "an array index (int >= 0)", where)
    if index < 0:
        raise _DamagedError(f"{where}['i']", "must be an array index (int >= 0)", index)
    code = _field(spec, "dtype", str, "a NumPy dtype string such as '<f4'", where)
    try:
        dtype = np.dtype(code)
    except TypeError:
        dtype = None
    if dtype is None or dtype.hasobject or dtype.kind not in "biufc":
        raise _DamagedError(f"{where}['dtype']", "must be a numeric or bool NumPy dtype",
                            repr(code))
    dims = _field(spec, "shape", list, "a list of sizes (ints >= 0)", where)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise _DamagedError(f"{where}['shape']", "must be a list of sizes (ints >= 0)", dims)
    return index, dtype, tuple(dims)


def _decode(spec: Any, path: tree.Path, archive: zipfile.ZipFile) -> Any:
    where = tree.keystr(path, "tree")
    if len(path) > _MAX_DEPTH:
        raise _DamagedError(f"tree at depth {len(path)}",
                            f"must nest at most {_MAX_DEPTH} containers deep",
                            "a deeper structure")
    if not isinstance(spec, dict):
        raise _DamagedError(where, "must be a node record (a JSON object)", describe(spec))
    t = spec.get("t")
    if t not in _KINDS:
        raise _DamagedError(f"{where}['t']", f"must be one of {sorted(_KINDS)}", repr(t))
    if t == "none":
        return None
    if t in ("array", "scalar"):
        index, dtype, shape = _array_spec(spec, where)
        if t == "scalar" and shape != ():
            raise _DamagedError(f"{where}['shape']", "must be [] for a scalar", list(shape))
        arr = _read_member(archive, f"leaf_{index}", dtype, shape, where)
        return arr if t == "array" else arr[()]
    if t == "bool":
        return _field(spec, "v", bool, "true or false", where)
    if t == "int":
        return _field(spec, "v", int, "an integer", where)
    if t == "float":
        text = _field(spec, "v", str, "a float written as a string (repr)", where)
        try:
            return float(text)
        except ValueError:
            raise _DamagedError(f"{where}['v']", "must be a float written as a string (repr)",
                           repr(text)) from None
    if t == "dict":
        kids = _field(spec, "c", dict, "a JSON object of children", where)
        return {k: _decode(v, (*path, k), archive) for k, v in kids.items()}
    items = _field(spec, "c", list, "a JSON list of children", where)
    if t == "namedtuple":
        _field(spec, "name", str, "the NamedTuple's type name", where)
        fields = _field(spec, "fields", list, "the list of field names", where)
        if len(fields) != len(items) or not all(isinstance(f, str) for f in fields):
            raise _DamagedError(f"{where}['fields']", f"must be {len(items)} field names, one per "
                           "child", fields)
    kids = [_decode(v, (*path, i), archive) for i, v in enumerate(items)]
    return kids if t == "list" else tuple(kids)


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

    Every field of the file's structure record is checked (node kinds, scalar
    types, array indices, dtypes and shapes, nesting depth), and each array's
    header is checked against the record and the file's size before the array
    is read, so a damaged or hostile file never allocates more than it holds.

    Args:
        path: the checkpoint file.
        like: optional template; restores ``NamedTuple`` types and checks
            that structure, shapes and dtypes match.

    Raises:
        ValueError: not an nnfunc checkpoint, an unknown format version, a
            damaged file, or a mismatch with ``like`` (naming the path, e.g.
            ``tree[0].w``, and both shapes).
        TypeError: ``path`` is not a path.
        FileNotFoundError: if ``path`` does not exist.
    """
    source = _path("io.load", path)
    if os.path.isdir(source):
        raise IsADirectoryError(errno.EISDIR, f"io.load: {source} is a directory, not a "
                                "checkpoint file", source)
    if not os.path.exists(source):
        raise FileNotFoundError(errno.ENOENT, f"io.load: no such checkpoint {source}", source)
    if not zipfile.is_zipfile(source):
        raise fail("io.load", "path", "must be an nnfunc checkpoint (an .npz archive written "
                   "by io.save)", f"{source}, which is not a zip archive")
    try:
        with zipfile.ZipFile(source) as archive:
            data = _load_tree(source, archive)
    except _DamagedError as err:
        raise fail("io.load", f"{source}: structure record {err.where}", err.expected,
                   err.got) from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as err:
        if isinstance(err, ValueError) and str(err).startswith("io.load"):
            raise
        raise fail("io.load", "path", "must be an undamaged nnfunc checkpoint",
                   f"{source}, which is damaged: {err}") from None
    return data if like is None else _conform(data, like, (), source)


def _load_tree(source: str, archive: zipfile.ZipFile) -> Any:
    if _META + ".npy" not in archive.namelist():
        raise fail("io.load", "path", "must be an nnfunc checkpoint (written by io.save)",
                   f"{source}, an archive with no {_META} record")
    raw = _read_member(archive, _META, np.dtype(np.uint8), None, _META)
    try:
        meta = json.loads(raw.tobytes().decode())
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise fail("io.load", "path", "must hold a readable structure record",
                   f"{source}, whose record does not parse: {type(err).__name__}") from None
    if not isinstance(meta, dict):
        raise fail("io.load", f"{source}: structure record", "must be a JSON object",
                   describe(meta))
    if meta.get("format") != "nnfunc-checkpoint" or meta.get("version") != FORMAT_VERSION:
        raise fail("io.load", f"{source}: format", f"must be 'nnfunc-checkpoint' version "
                   f"{FORMAT_VERSION} (what this nnfunc reads)",
                   f"format {meta.get('format')!r} version {meta.get('version')!r}")
    if "tree" not in meta:
        raise fail("io.load", f"{source}: structure record", "must have a 'tree' entry",
                   f"keys {sorted(meta)}")
    return _decode(meta["tree"], (), archive)

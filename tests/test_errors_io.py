"""io.load checks every field of a checkpoint's structure record; io.save names its target."""

from __future__ import annotations

import io as _io
import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nnfunc import io


def _npy(arr: np.ndarray) -> bytes:
    buf = _io.BytesIO()
    np.lib.format.write_array(buf, arr)
    return buf.getvalue()


def _write(path: Path, record: str, members: dict[str, bytes] | None = None) -> Path:
    """A hand-made checkpoint: ``record`` is the raw JSON of the structure record."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("__nnfunc__.npy", _npy(np.frombuffer(record.encode(), np.uint8)))
        for name, data in (members or {}).items():
            z.writestr(name, data)
    return path


def _with_tree(path: Path, node: Any, arrays: tuple[np.ndarray, ...] = ()) -> Path:
    record = json.dumps({"format": "nnfunc-checkpoint", "version": 1, "tree": node})
    return _write(path, record, {f"leaf_{i}.npy": _npy(a) for i, a in enumerate(arrays)})


ARRAY = {"t": "array", "i": 0, "dtype": "<f8", "shape": [2]}

BAD_NODES = [
    ({"t": "bool", "v": "false"}, r"tree\['v'\] must be true or false; got str 'false'"),
    ({"t": "bool", "v": 1}, r"tree\['v'\] must be true or false; got int 1"),
    ({"t": "int", "v": 1.9}, r"tree\['v'\] must be an integer; got float 1.9"),
    ({"t": "int", "v": True}, r"tree\['v'\] must be an integer; got bool True"),
    ({"t": "float", "v": "abc"}, r"tree\['v'\] must be a float written as a string"),
    ({"t": "float", "v": [1]}, r"tree\['v'\] must be a float written as a string"),
    ([1, 2], r"structure record tree must be a node record \(a JSON object\); got list"),
    ("x", r"structure record tree must be a node record \(a JSON object\); got str 'x'"),
    ({"v": 1}, r"tree\['t'\] must be one of \["),
    ({"t": "dict", "c": [1]}, r"tree\['c'\] must be a JSON object of children; got list"),
    ({"t": "dict"}, r"tree\['c'\] must be a JSON object of children; got nothing"),
    ({"t": "dict", "c": {"a": "x"}}, r"tree\['a'\] must be a node record"),
    ({"t": "list", "c": {"a": 1}}, r"tree\['c'\] must be a JSON list of children; got dict"),
    ({"t": "tuple", "c": "ab"}, r"tree\['c'\] must be a JSON list of children; got str"),
    ({"t": "list", "c": [{"t": "int", "v": "3"}]}, r"tree\[0\]\['v'\] must be an integer"),
    ({"t": "namedtuple", "name": 3, "fields": [], "c": []}, r"tree\['name'\] must be"),
    ({"t": "namedtuple", "name": "P", "fields": ["a"], "c": []},
     r"tree\['fields'\] must be 0 field names"),
    ({**ARRAY, "i": "0"}, r"tree\['i'\] must be an array index \(int >= 0\); got str '0'"),
    ({**ARRAY, "i": -1}, r"tree\['i'\] must be an array index \(int >= 0\); got -1"),
    ({**ARRAY, "i": 5}, r"tree must refer to an array stored in the file; got a missing array"),
    ({**ARRAY, "dtype": None}, r"tree\['dtype'\] must be a NumPy dtype string"),
    ({**ARRAY, "dtype": "blah"}, r"tree\['dtype'\] must be a numeric or bool NumPy dtype"),
    ({**ARRAY, "dtype": "|O"}, r"tree\['dtype'\] must be a numeric or bool NumPy dtype"),
    ({**ARRAY, "shape": "ab"}, r"tree\['shape'\] must be a list of sizes"),
    ({**ARRAY, "shape": [-2]}, r"tree\['shape'\] must be a list of sizes"),
    ({**ARRAY, "shape": [3]}, r"tree must be stored as recorded, float64 \(3,\); got float64 "
                              r"\(2,\)"),
    ({**ARRAY, "dtype": "<f4"}, r"tree must be stored as recorded, float32"),
    ({**ARRAY, "t": "scalar"}, r"tree\['shape'\] must be \[\] for a scalar; got \[2\]"),
]


@pytest.mark.parametrize(("node", "message"), BAD_NODES)
def test_every_field_of_the_record_is_checked(tmp_path: Path, node: Any, message: str) -> None:
    path = _with_tree(tmp_path / "c.npz", node, (np.zeros(2),))
    with pytest.raises(ValueError, match=r"io\.load: .*c\.npz: structure record " + message
                       if not message.startswith("structure") else r"io\.load: .*" + message):
        io.load(path)


@pytest.mark.parametrize("record", ["[1, 2]", '"x"', "3", "null"])
def test_a_record_that_is_not_an_object(tmp_path: Path, record: str) -> None:
    with pytest.raises(ValueError, match=r"io\.load: .*: structure record must be a JSON "
                                         r"object; got"):
        io.load(_write(tmp_path / "c.npz", record))


def test_a_record_without_a_tree_or_of_another_format(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.npz", '{"format": "nnfunc-checkpoint", "version": 1}')
    with pytest.raises(ValueError, match=r"must have a 'tree' entry; got keys \['format', "
                                         r"'version'\]"):
        io.load(path)
    path = _write(tmp_path / "d.npz", '{"format": "nnfunc-checkpoint", "version": 9, "tree": 1}')
    with pytest.raises(ValueError, match=r"format must be 'nnfunc-checkpoint' version 1 .*; "
                                         r"got format 'nnfunc-checkpoint' version 9"):
        io.load(path)


@pytest.mark.parametrize("depth", [250, 5000, 200_000])
def test_deep_records_never_hit_the_recursion_limit(tmp_path: Path, depth: int) -> None:
    node = '{"t": "list", "c": [' * depth + '{"t": "none"}' + "]}" * depth
    path = _write(tmp_path / "c.npz", '{"format": "nnfunc-checkpoint", "version": 1, '
                  f'"tree": {node}}}')
    with pytest.raises(ValueError, match=r"io\.load: .*(must nest at most 200 containers deep|"
                                         r"record does not parse: RecursionError)"):
        io.load(path)


def test_saving_a_tree_too_deep_to_load_is_refused(tmp_path: Path) -> None:
    deep: Any = None
    for _ in range(201):
        deep = [deep]
    with pytest.raises(ValueError, match=r"io\.save: data must nest at most 200 containers deep"):
        io.save(tmp_path / "d.npz", deep)
    assert os.listdir(tmp_path) == []
    ok: Any = None
    for _ in range(200):
        ok = [ok]
    io.save(tmp_path / "ok.npz", ok)
    assert io.load(tmp_path / "ok.npz") == ok


def _header_only(shape: tuple[int, ...], dtype: str = "<f8", data: bytes = b"\0" * 16) -> bytes:
    buf = _io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue() + data


def test_headers_claiming_absurd_shapes_are_checked_before_allocating(tmp_path: Path) -> None:
    huge = (10**12,)
    record = json.dumps({"format": "nnfunc-checkpoint", "version": 1,
                         "tree": {"t": "array", "i": 0, "dtype": "<f8", "shape": list(huge)}})
    path = _write(tmp_path / "c.npz", record, {"leaf_0.npy": _header_only(huge)})
    with pytest.raises(ValueError, match=r"tree must hold 8000000000000 bytes of data for "
                                         r"float64 \(1000000000000,\); got 16 bytes"):
        io.load(path)
    # the structure record's own header is checked the same way
    with zipfile.ZipFile(tmp_path / "m.npz", "w") as z:
        z.writestr("__nnfunc__.npy", _header_only(huge, "|u1"))
    with pytest.raises(ValueError, match=r"__nnfunc__ must hold 1000000000000 bytes"):
        io.load(tmp_path / "m.npz")


def test_object_arrays_are_refused_from_the_header(tmp_path: Path) -> None:
    record = json.dumps({"format": "nnfunc-checkpoint", "version": 1, "tree": ARRAY})
    path = _write(tmp_path / "c.npz", record, {"leaf_0.npy": _header_only((2,), "|O")})
    with pytest.raises(ValueError, match=r"must be stored as a numeric or bool array \(nnfunc "
                                         r"never unpickles\); got dtype object"):
        io.load(path)


def test_files_that_are_not_checkpoints(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros(2))
    (tmp_path / "t.txt").write_text("hello")
    for name in ("a.npy", "t.txt"):
        with pytest.raises(ValueError, match=r"io\.load: path must be an nnfunc checkpoint "
                                             r"\(an \.npz archive written by io\.save\); got "
                                             r".*, which is not a zip archive"):
            io.load(tmp_path / name)
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(ValueError, match=r"io\.load: path must be an nnfunc checkpoint .*an "
                                         r"archive with no __nnfunc__ record"):
        io.load(tmp_path / "z.npz")
    with pytest.raises(FileNotFoundError, match=r"io\.load: no such checkpoint"):
        io.load(tmp_path / "missing.npz")
    with pytest.raises(IsADirectoryError, match=r"io\.load: .* is a directory"):
        io.load(tmp_path)


@pytest.mark.parametrize("path", [3, None, b"bytes.npz", ["a.npz"]])
def test_paths_of_the_wrong_type(tmp_path: Path, path: Any) -> None:
    with pytest.raises(TypeError, match=r"io\.save: path must be a str"):
        io.save(path, {"a": 1})
    with pytest.raises(TypeError, match=r"io\.load: path must be a str"):
        io.load(path)


def test_save_errors_name_the_target_not_the_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "missing_dir" / "ck.npz"
    with pytest.raises(FileNotFoundError) as err:
        io.save(target, {"a": 1})
    assert f"io.save: cannot write {target}" in str(err.value)
    assert ".tmp" not in str(err.value)
    assert err.value.filename == str(target)
    with pytest.raises(IsADirectoryError) as err2:
        io.save(tmp_path, {"a": 1})
    assert f"io.save: cannot write {tmp_path}" in str(err2.value)
    assert ".tmp" not in str(err2.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_checkpoints_honour_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        io.save(tmp_path / "ck.npz", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "ck.npz").st_mode) == 0o666 & ~umask


def test_a_replaced_checkpoint_keeps_its_permissions(tmp_path: Path) -> None:
    path = tmp_path / "ck.npz"
    io.save(path, {"a": 1})
    os.chmod(path, 0o640)
    io.save(path, {"a": 2})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert io.load(path) == {"a": 2}

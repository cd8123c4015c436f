"""Checkpoints: exact round trips, atomic writes, clear errors, never unpickling."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nnfunc import io, optim, random, tree
from nnfunc.combinators import serial
from nnfunc.layers import dense


class Pair(NamedTuple):
    a: Any
    b: Any


dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.int32, np.uint64, np.bool_,
                          np.uint8, np.float16])
arrays = dtypes.flatmap(lambda dt: hnp.arrays(
    dt, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    elements={"allow_nan": True} if np.dtype(dt).kind == "f" else None))
leaves = arrays | st.integers(-2**62, 2**62) | st.floats(allow_nan=False) | st.booleans() \
    | st.none()
trees = st.recursive(
    leaves,
    lambda kids: st.lists(kids, max_size=3) | st.tuples(kids, kids)
    | st.builds(Pair, kids, kids)
    | st.dictionaries(st.text(min_size=1, max_size=5), kids, max_size=3),
    max_leaves=10,
)


def _same(a: Any, b: Any) -> None:
    assert type(a) is type(b) or (isinstance(a, tuple) and isinstance(b, tuple))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype
        assert a.shape == b.shape
        assert a.tobytes() == b.tobytes()  # bitwise, NaN payloads included
    elif isinstance(a, dict):
        assert sorted(a) == sorted(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        assert a == b


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=trees)
def test_round_trip_is_exact(tmp_path: Path, data: Any) -> None:
    path = tmp_path / "t.npz"
    io.save(path, data)
    _same(io.load(path), _as_plain(data))
    _same(io.load(path, like=data), data)


def _as_plain(t: Any) -> Any:
    """What load gives without like: NamedTuples become plain tuples."""
    if isinstance(t, dict):
        return {k: _as_plain(v) for k, v in t.items()}
    if isinstance(t, tuple):
        return tuple(_as_plain(v) for v in t)
    if isinstance(t, list):
        return [_as_plain(v) for v in t]
    return t


def test_whole_training_state_round_trips_with_types(tmp_path: Path) -> None:
    model = serial(dense(4), dense(2))
    _, params = model.init(random.key(0), (3,))
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.adam(1e-3))
    state = opt.init(params)
    state, params = opt.update(state, tree.map(np.ones_like, params))
    ck = {"params": params, "opt_state": state, "key": random.key(7), "epoch": 3,
          "history": {"loss": [0.5, 0.25]}}
    io.save(tmp_path / "ck.npz", ck)
    back = io.load(tmp_path / "ck.npz", like=ck)
    _same(back, ck)
    assert isinstance(back["opt_state"].inner, optim.OptState)
    assert back["key"].dtype == np.uint64


def test_crash_mid_write_keeps_the_previous_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ck.npz"
    io.save(path, {"w": np.arange(3.0)})
    before = path.read_bytes()

    def crash(*args: Any, **kwargs: Any) -> None:
        raise OSError("simulated crash while writing")

    monkeypatch.setattr(io, "_npy_bytes", crash)
    with pytest.raises(OSError, match="simulated crash"):
        io.save(path, {"w": np.arange(5.0)})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ck.npz"]  # no temporary file left behind
    np.testing.assert_array_equal(io.load(path)["w"], np.arange(3.0))


def test_crash_at_rename_keeps_the_previous_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ck.npz"
    io.save(path, [np.ones(2)])

    def crash(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save(path, [np.zeros(2)])
    monkeypatch.undo()
    np.testing.assert_array_equal(io.load(path)[0], np.ones(2))
    assert os.listdir(tmp_path) == ["ck.npz"]


def test_mismatched_like_names_the_path(tmp_path: Path) -> None:
    model = serial(dense(4), dense(2))
    _, params = model.init(random.key(0), (3,))
    io.save(tmp_path / "p.npz", params)
    _, other = serial(dense(5), dense(2)).init(random.key(0), (3,))
    with pytest.raises(ValueError, match=r"io.load: tree\[0\]\.w is float32 \(3, 4\) in .* but "
                                         r"float32 \(3, 5\) in like"):
        io.load(tmp_path / "p.npz", like=other)
    with pytest.raises(ValueError, match=r"tree has 2 entries in .* but 3 in like"):
        io.load(tmp_path / "p.npz", like=(*params, ()))


def test_corrupted_files_give_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "ck.npz"
    io.save(path, {"w": np.arange(100.0)})
    data = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"io\.load: .*truncated\.npz"):
        io.load(tmp_path / "truncated.npz")
    (tmp_path / "garbage.npz").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=r"io\.load: .*garbage\.npz"):
        io.load(tmp_path / "garbage.npz")
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    with pytest.raises(ValueError, match="must be an nnfunc checkpoint"):
        io.load(tmp_path / "plain.npz")


def test_loading_never_unpickles(tmp_path: Path) -> None:
    np.savez(tmp_path / "evil.npz", __nnfunc__=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match=r"io\.load"):
        io.load(tmp_path / "evil.npz")


def test_unsupported_leaves_are_type_errors(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"io.save: tree\['a'\]\[1\] must be an array, a number"):
        io.save(tmp_path / "x.npz", {"a": [1, "text"]})
    with pytest.raises(TypeError, match="must be a numeric or bool array; got dtype object"):
        io.save(tmp_path / "x.npz", [np.array([None])])
    with pytest.raises(TypeError, match="non-str key 3"):
        io.save(tmp_path / "x.npz", {3: np.ones(1)})
    assert not (tmp_path / "x.npz").exists()

"""Loading PyTorch recurrent weights: the mapping (no torch needed), its errors, and,
where torch is installed (``-m torch``), PyTorch's own outputs reproduced."""

from __future__ import annotations

from importlib import import_module
from typing import Any

import numpy as np
import pytest

import nnfunc as nf
from nnfunc import interop, random

LOADERS = {"RNN": (interop.load_torch_rnn, nf.simple_rnn, 1),
           "LSTM": (interop.load_torch_lstm, nf.lstm, 4),
           "GRU": (interop.load_torch_gru, nf.gru, 3)}


def _state(gates: int, hidden: int, d_in: int, seed: int = 0) -> dict[str, Any]:
    ks = random.split(random.key(seed), 4)
    return {"weight_ih_l0": random.normal(ks[0], (gates * hidden, d_in), np.float64),
            "weight_hh_l0": random.normal(ks[1], (gates * hidden, hidden), np.float64),
            "bias_ih_l0": random.normal(ks[2], (gates * hidden,), np.float64),
            "bias_hh_l0": random.normal(ks[3], (gates * hidden,), np.float64)}


@pytest.mark.parametrize("module", sorted(LOADERS))
def test_weights_are_transposed_and_biases_summed_or_kept(module: str) -> None:
    load, _, gates = LOADERS[module]
    s = _state(gates, 3, 2)
    p = load(s)
    np.testing.assert_array_equal(p.w_x, s["weight_ih_l0"].T)
    np.testing.assert_array_equal(p.w_h, s["weight_hh_l0"].T)
    assert p.w_x.flags.c_contiguous
    if module == "GRU":
        np.testing.assert_array_equal(p.b_x, s["bias_ih_l0"])
        np.testing.assert_array_equal(p.b_h, s["bias_hh_l0"])
    else:
        np.testing.assert_array_equal(p.b, s["bias_ih_l0"] + s["bias_hh_l0"])
    assert all(a.dtype == np.float64 for a in p)
    assert all(a.dtype == np.float32 for a in load(s, dtype=np.float32))


def test_prefix_and_no_bias() -> None:
    s = _state(4, 2, 3)
    nested = {"embed.weight": np.zeros((5, 3)), "lstm.weight_ih_l0": s["weight_ih_l0"],
              "lstm.weight_hh_l0": s["weight_hh_l0"]}
    p = interop.load_torch_lstm(nested, prefix="lstm.")
    np.testing.assert_array_equal(p.b, np.zeros(8))
    np.testing.assert_array_equal(p.w_h, s["weight_hh_l0"].T)


def test_bad_state_dicts_are_named() -> None:
    s = _state(4, 2, 3)
    with pytest.raises(ValueError, match=r"load_torch_lstm: state_dict must hold only the "
                                         r"entries of a one-layer, unidirectional torch.nn.LSTM "
                                         r"without projection; got also weight_ih_l1"):
        interop.load_torch_lstm({**s, "weight_ih_l1": s["weight_ih_l0"]})
    with pytest.raises(ValueError, match=r"got also weight_hh_l0_reverse"):
        interop.load_torch_lstm({**s, "weight_hh_l0_reverse": s["weight_hh_l0"]})
    with pytest.raises(ValueError, match=r"load_torch_gru: state_dict must hold weight_ih_l0, "
                                         r"weight_hh_l0 .*; got no weight_hh_l0"):
        interop.load_torch_gru({"weight_ih_l0": s["weight_ih_l0"]})
    with pytest.raises(ValueError, match=r"load_torch_gru: weight_hh_l0 must have shape "
                                         r"\(3·H, H\); got shape \(8, 2\)"):
        interop.load_torch_gru(s)  # an LSTM's weights
    with pytest.raises(ValueError, match=r"load_torch_lstm: weight_ih_l0 must have shape "
                                         r"\(8, D\) to match weight_hh_l0 \(8, 2\); got shape "
                                         r"\(6, 3\)"):
        interop.load_torch_lstm({**s, "weight_ih_l0": np.zeros((6, 3))})
    with pytest.raises(ValueError, match=r"load_torch_lstm: bias_hh_l0 must have shape \(8,\); "
                                         r"got shape \(4,\)"):
        interop.load_torch_lstm({**s, "bias_hh_l0": np.zeros(4)})
    with pytest.raises(ValueError, match=r"must hold both biases or neither; got only "
                                         r"bias_ih_l0"):
        interop.load_torch_lstm({k: v for k, v in s.items() if k != "bias_hh_l0"})
    with pytest.raises(TypeError, match=r"load_torch_rnn: state_dict must be a mapping"):
        interop.load_torch_rnn([1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"load_torch_lstm: weight_ih_l0 must be a numeric "
                                         r"array"):
        interop.load_torch_lstm({**s, "weight_ih_l0": "w"})


def _torch_case(module: str, dtype: Any, seed: int) -> tuple[Any, Any, Any]:
    torch = import_module("torch")
    torch.manual_seed(seed)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    m = getattr(torch.nn, module)(5, 7, batch_first=True).to(tdtype)
    x = torch.randn(3, 6, 5, dtype=tdtype)
    with torch.no_grad():
        y, _ = m(x)
    state = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    return state, x.numpy(), y.numpy()


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("module", sorted(LOADERS))
def test_loaded_weights_give_pytorchs_outputs(module: str, dtype: Any) -> None:
    load, factory, _ = LOADERS[module]
    for seed in range(3):
        state, x, want = _torch_case(module, dtype, seed)
        params = load(state)
        assert params.w_x.dtype == dtype
        tol = {"rtol": 1e-12, "atol": 1e-13} if dtype == np.float64 else {"rtol": 1e-5,
                                                                          "atol": 1e-6}
        y = factory(7, dtype=dtype).apply(params, x)
        assert y.dtype == dtype
        np.testing.assert_allclose(y, want, **tol)
        last = factory(7, return_sequences=False, dtype=dtype).apply(params, x)
        np.testing.assert_allclose(last, want[:, -1], **tol)


@pytest.mark.torch
@pytest.mark.parametrize("module", sorted(LOADERS))
def test_loaded_weights_give_pytorchs_gradients(module: str) -> None:
    torch = import_module("torch")
    load, factory, _ = LOADERS[module]
    torch.manual_seed(7)
    m = getattr(torch.nn, module)(4, 5, batch_first=True).double()
    x = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    y, _ = m(x)
    dy = torch.randn_like(y)
    (y * dy).sum().backward()
    state = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    grads, dx = factory(5, dtype=np.float64).grad(load(state), x.detach().numpy(),
                                                  dy.numpy())
    np.testing.assert_allclose(dx, x.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads.w_h, m.weight_hh_l0.grad.numpy().T, rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(grads.w_x, m.weight_ih_l0.grad.numpy().T, rtol=1e-10,
                               atol=1e-12)
    db = grads.b_h if module == "GRU" else grads.b  # d(b_ih + b_hh)/db_hh = 1
    np.testing.assert_allclose(db, m.bias_hh_l0.grad.numpy(), rtol=1e-10, atol=1e-12)

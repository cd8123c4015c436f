"""Loading ``torch.nn.MultiheadAttention`` weights: nnfunc gives PyTorch's outputs.

The comparisons need torch (``-m torch``); the error checks do not.
"""

from __future__ import annotations

import numpy as np
import pytest

import nnfunc as nf
from nnfunc.interop import load_torch_multihead_attention


@pytest.mark.torch
@pytest.mark.parametrize(("width", "heads", "causal", "bias"),
                         [(8, 2, False, True), (8, 2, True, True), (12, 3, True, False),
                          (5, 1, False, True), (6, 6, True, True)])
def test_outputs_match_pytorch(width: int, heads: int, causal: bool, bias: bool) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(width, heads, bias=bias, batch_first=True,
                                      dtype=torch.float64)
    with torch.no_grad():  # PyTorch starts the biases at zero: make them count
        for p in mha.parameters():
            p.add_(0.1 * torch.randn_like(p))
    n, t = 3, 7
    x = np.random.default_rng(1).normal(size=(n, t, width))
    xt = torch.from_numpy(x)
    mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1) if causal else None
    expected, _ = mha(xt, xt, xt, attn_mask=mask, need_weights=False)
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        params = load_torch_multihead_attention(mha.state_dict(), dtype=dtype)
        layer = nf.multi_head_attention(heads, causal=causal, use_bias=bias, dtype=dtype)
        assert layer.init(nf.random.key(0), (t, width))[1]._fields == params._fields
        y = layer.apply(params, x.astype(dtype))
        assert y.dtype == dtype
        np.testing.assert_allclose(y, expected.detach().numpy(), rtol=rtol,
                                   atol=rtol * np.abs(expected.detach().numpy()).max())


@pytest.mark.torch
def test_gradients_match_pytorch() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    width, heads, n, t = 6, 2, 2, 5
    mha = torch.nn.MultiheadAttention(width, heads, batch_first=True, dtype=torch.float64)
    x = np.random.default_rng(3).normal(size=(n, t, width))
    dy = np.random.default_rng(4).normal(size=(n, t, width))
    xt = torch.from_numpy(x).requires_grad_(True)
    mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
    out, _ = mha(xt, xt, xt, attn_mask=mask, need_weights=False)
    out.backward(torch.from_numpy(dy))
    params = load_torch_multihead_attention(mha.state_dict(), dtype=np.float64)
    grads, dx = nf.multi_head_attention(heads, causal=True).grad(params, x, dy)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads.w_qkv, mha.in_proj_weight.grad.numpy().T, rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(grads.b_qkv, mha.in_proj_bias.grad.numpy(), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(grads.w_o, mha.out_proj.weight.grad.numpy().T, rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(grads.b_o, mha.out_proj.bias.grad.numpy(), rtol=1e-10,
                               atol=1e-12)


def _state(width: int) -> dict[str, np.ndarray]:
    return {"in_proj_weight": np.arange(3 * width * width, dtype=float).reshape(3 * width, width),
            "in_proj_bias": np.arange(3 * width, dtype=float),
            "out_proj.weight": np.arange(width * width, dtype=float).reshape(width, width),
            "out_proj.bias": np.arange(width, dtype=float)}


def test_the_layout_is_a_transpose() -> None:
    state = _state(4)
    params = load_torch_multihead_attention({f"block.attn.{k}": v for k, v in state.items()},
                                            prefix="block.attn.", dtype=np.float64)
    np.testing.assert_array_equal(params.w_qkv, state["in_proj_weight"].T)
    np.testing.assert_array_equal(params.b_qkv, state["in_proj_bias"])
    np.testing.assert_array_equal(params.w_o, state["out_proj.weight"].T)
    np.testing.assert_array_equal(params.b_o, state["out_proj.bias"])
    assert params.w_qkv.dtype == np.float64
    assert load_torch_multihead_attention(state, dtype=np.float32).w_o.dtype == np.float32
    no_bias = load_torch_multihead_attention({k: v for k, v in state.items() if "bias" not in k})
    assert no_bias.b_qkv is None
    assert no_bias.b_o is None


def test_bad_state_dicts_name_the_entry() -> None:
    state = _state(4)
    with pytest.raises(ValueError, match=r"load_torch_multihead_attention: state_dict must hold "
                                         r"in_proj_weight, out_proj.weight .*no out_proj.weight"):
        load_torch_multihead_attention({k: v for k, v in state.items() if k != "out_proj.weight"})
    with pytest.raises(ValueError, match=r"in_proj_weight must have shape \(3·D, D\); got shape "
                                         r"\(4, 4\)"):
        load_torch_multihead_attention({**state, "in_proj_weight": np.zeros((4, 4))})
    with pytest.raises(ValueError, match=r"out_proj.weight must have shape \(4, 4\) to match "
                                         r"in_proj_weight \(12, 4\); got shape \(4, 3\)"):
        load_torch_multihead_attention({**state, "out_proj.weight": np.zeros((4, 3))})
    with pytest.raises(ValueError, match=r"out_proj.bias must have shape \(4,\); got shape "
                                         r"\(3,\)"):
        load_torch_multihead_attention({**state, "out_proj.bias": np.zeros(3)})
    with pytest.raises(ValueError, match=r"must hold both biases or neither; got only "
                                         r"in_proj_bias"):
        load_torch_multihead_attention({k: v for k, v in state.items() if k != "out_proj.bias"})
    with pytest.raises(ValueError, match=r"must hold only the entries of a torch.nn.Multihead"
                                         r"Attention with kdim = vdim.*also q_proj_weight"):
        load_torch_multihead_attention({**state, "q_proj_weight": np.zeros((4, 4))})
    with pytest.raises(ValueError, match=r"no x.in_proj_weight"):
        load_torch_multihead_attention(state, prefix="x.")
    with pytest.raises(TypeError, match=r"state_dict must be a mapping"):
        load_torch_multihead_attention([1, 2])  # type: ignore[arg-type]

"""``import nnfunc as nf`` reaches every public module, and stays light."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import nnfunc as nf

PUBLIC = sorted(m.name for m in pkgutil.iter_modules(nf.__path__)
                if not m.name.startswith("_") and m.name not in {"typing"})


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_module_is_an_attribute(name: str) -> None:
    if name == "summary":  # nf.summary is the function (nnfunc.summary.summary)
        assert callable(nf.summary)
        return
    if name == "distributed":  # needs the mpi extra: an attribute, imported only on use
        assert "distributed" in dir(nf)
        return
    module = getattr(nf, name)
    assert module.__name__ == f"nnfunc.{name}"


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        nf.no_such_thing  # noqa: B018


def test_import_is_light_and_testing_does_not_pull_hypothesis() -> None:
    code = ("import sys; before = set(sys.modules); import nnfunc as nf; "
            "nf.testing; nf.io; nf.datasets; nf.metrics; "
            "bad = sorted(m for m in set(sys.modules) - before if m.split('.')[0] not in "
            "sys.stdlib_module_names | {'numpy', 'nnfunc'}); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=120).stdout.strip()
    assert out == "[]", f"import nnfunc (and its lazy modules) pulled in {out}"

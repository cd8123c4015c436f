"""The built wheel and sdist hold every subpackage and data file of the source tree.

An editable install imports the source tree, so a package left out of the
wheel goes unnoticed there; this builds both distributions (an isolated
PEP 517 build, as ``pip install .`` does) and compares their contents with
``nnfunc/**/__init__.py`` and the data files, and checks that the wheel
holds Adam's compiled loop (built from ``nnfunc/optim/_fused.c``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _source_files() -> set[str]:
    pkg = ROOT / "nnfunc"
    wanted = [*pkg.rglob("*.py"), *pkg.rglob("py.typed"), *(pkg / "data").iterdir()]
    return {p.relative_to(ROOT).as_posix() for p in wanted if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=600)
    return out


def test_every_subpackage_is_a_package() -> None:
    for d in (ROOT / "nnfunc").rglob("*"):
        if d.is_dir() and d.name not in {"__pycache__", "data"}:
            assert (d / "__init__.py").exists(), f"{d} has no __init__.py"


def test_wheel_holds_the_source_tree(dists: Path) -> None:
    (wheel,) = dists.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_source_files() - names)
    assert not missing, f"missing from {wheel.name}: {missing}"


def test_wheel_holds_the_compiled_loop(dists: Path) -> None:
    # the extension is optional (a machine without a C compiler installs without it), so a
    # build that silently failed, or an sdist without its source, would go unnoticed but here
    (wheel,) = dists.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    built = [n for n in names if n.startswith("nnfunc/optim/_fused.") and not n.endswith(".c")]
    assert len(built) == 1, f"{wheel.name} holds {built} for nnfunc.optim._fused"
    assert "-none-any" not in wheel.name  # a wheel with a compiled part is platform-specific


def test_sdist_holds_the_source_tree(dists: Path) -> None:
    (sdist,) = dists.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    wanted = _source_files() | {"pyproject.toml", "setup.py", "README.md", "LICENSE",
                                "nnfunc/optim/_fused.c"}
    missing = sorted(wanted - names)
    assert not missing, f"missing from {sdist.name}: {missing}"


def test_without_a_c_compiler_the_wheel_builds_without_the_loop(tmp_path: Path) -> None:
    # the compiled loop is optional: with no working compiler (CC=/bin/false) the source
    # still builds a wheel, which lacks only the extension (Adam then runs NumPy's kernel).
    # Built from a copy of the unpacked sdist, so no earlier build's objects are at hand.
    src = tmp_path / "src"
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True, timeout=600)
    (sdist,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(src, **safe)  # type: ignore[arg-type]
    (unpacked,) = src.iterdir()
    env = {**os.environ, "CC": "/bin/false"}
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path),
                    str(unpacked)], check=True, capture_output=True, timeout=600, env=env)
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not [n for n in names if n.startswith("nnfunc/optim/_fused.") and n.endswith(".so")]
    missing = sorted(_source_files() - names)
    assert not missing, f"missing from {wheel.name}: {missing}"

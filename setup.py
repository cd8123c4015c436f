"""The build's three compiled parts: Adam's fused loop, ``nnfunc.optim._fused``;
softmax cross-entropy from integer labels, ``nnfunc._xent``; and the bias add and
ReLU's two passes, ``nnfunc._elementwise``.

Everything else is in ``pyproject.toml``. The extensions are optional: where no C
compiler is found (or a build fails) the package installs without them and NumPy's
kernels run instead: Adam's and the elementwise passes give the same bits
(``nnfunc/optim/_compiled.py``, ``nnfunc/_kernels.py``), the loss's the same values to
within float rounding (``nnfunc/losses.py``).
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Bit-for-bit agreement with NumPy's kernel needs IEEE arithmetic as written: no
# fused multiply-add (-ffp-contract=off; GCC contracts by default), no fast-math.
# -fno-math-errno lets sqrt be one instruction (and vectorise); it sets no errno
# anyway for the non-negative v it is given.
UNIX_FLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno"]
# The loss's exp clamps its argument with a comparison, and ReLU picks by one; GCC
# turns those into vector selects only when it may assume comparisons do not trap.
# Values are unchanged.
UNIX_FLAGS_OF = {"nnfunc._xent": ["-fno-trapping-math"],
                 "nnfunc._elementwise": ["-fno-trapping-math"]}


class BuildExt(build_ext):
    """``build_ext`` with the flags above on GCC-like compilers (MSVC's default,
    ``/fp:precise``, neither contracts nor reorders)."""

    def build_extensions(self) -> None:
        if self.compiler.compiler_type in ("unix", "mingw32", "cygwin"):
            for ext in self.extensions:
                ext.extra_compile_args = [*ext.extra_compile_args, *UNIX_FLAGS,
                                          *UNIX_FLAGS_OF.get(ext.name, [])]
        super().build_extensions()


setup(
    ext_modules=[Extension("nnfunc.optim._fused", ["nnfunc/optim/_fused.c"],
                           depends=["nnfunc/_loops.h"], optional=True),
                 Extension("nnfunc._xent", ["nnfunc/_xent.c"], depends=["nnfunc/_loops.h"],
                           optional=True),
                 Extension("nnfunc._elementwise", ["nnfunc/_elementwise.c"],
                           depends=["nnfunc/_loops.h"], optional=True)],
    cmdclass={"build_ext": BuildExt},
)

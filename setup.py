"""The build's two compiled parts: Adam's fused loop, ``nnfunc.optim._fused``, and
softmax cross-entropy from integer labels, ``nnfunc._xent``.

Everything else is in ``pyproject.toml``. Both extensions are optional: where no C
compiler is found (or a build fails) the package installs without it and NumPy's
kernels run instead: Adam's gives the same bits (``nnfunc/optim/_compiled.py``), the
loss's the same values to within float rounding (``nnfunc/losses.py``).
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Bit-for-bit agreement with NumPy's kernel needs IEEE arithmetic as written: no
# fused multiply-add (-ffp-contract=off; GCC contracts by default), no fast-math.
# -fno-math-errno lets sqrt be one instruction (and vectorise); it sets no errno
# anyway for the non-negative v it is given.
UNIX_FLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno"]
# The loss's exp clamps its argument with a comparison; GCC turns that into a vector
# select only when it may assume comparisons do not trap. Values are unchanged.
UNIX_FLAGS_OF = {"nnfunc._xent": ["-fno-trapping-math"]}


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
                           optional=True)],
    cmdclass={"build_ext": BuildExt},
)

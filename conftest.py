"""pytest at the repository root: modules that need a missing optional extra are not collected.

``nnfunc/distributed.py`` imports mpi4py (the ``mpi`` extra) at import time,
so ``--doctest-modules`` could not even import it without the extra; CI
installs every extra and collects everything.
"""

from __future__ import annotations

import importlib.util

collect_ignore = [] if importlib.util.find_spec("mpi4py") else ["nnfunc/distributed.py"]

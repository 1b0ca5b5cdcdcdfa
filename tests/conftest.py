"""Test configuration: float64 everywhere (tolerances below 1e-6 need it), compiled programs freed per module.

Every executable XLA's CPU backend compiles keeps its machine code in its own memory mappings
(a whole ``solve`` is about 700), alive as long as a jit cache holds it. A pytest-xdist worker
that runs half the suite would pass Linux's default ``vm.max_map_count`` (65,530), and the next
compilation then dies with a segmentation fault inside XLA. Test modules do not share compiled
programs, so the caches are cleared after each one.
"""

import gc
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    yield
    jax.clear_caches()
    gc.collect()

"""Test configuration: float64 everywhere (tolerances below 1e-6 need it)."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

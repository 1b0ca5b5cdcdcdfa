"""Benchmarks of ilqg_jax against a NumPy finite-difference iLQR; run ``python -m benchmarks --help``."""

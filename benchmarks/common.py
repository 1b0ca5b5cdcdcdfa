"""Shared benchmark machinery: timing, compile time, machine info, JSON, plots, README.

Conventions (also written into the generated ``benchmarks/README.md``):

* **Run time** is the median over ``repeats`` of warm calls (after at least one
  warm-up call), each followed by ``jax.block_until_ready``; a call shorter
  than a few milliseconds is repeated ``number`` times per sample. The spread
  is the interquartile range (IQR). Garbage collection is off while timing.
* **Compile time** is measured on its own, never folded into run time: after
  ``jax.clear_caches()``, the wall time of ``jax.jit(f).lower(*args)`` (trace
  and lower to StableHLO) plus ``.compile()`` (XLA). As a cross-check the
  first call after clearing the caches minus a warm call is recorded too.
* Numbers are written to ``<results>/<name>.json``; every table in the README
  and every plot is generated from those files.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import math
import os
import platform
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np

__all__ = [
    "DEFAULT_RESULTS_DIR", "README_PATH", "enable_x64", "jnp_dtype", "time_call", "aot_compile",
    "first_call_overhead", "iqr_ms", "warm_compiler", "machine_info", "machine_line", "write_json",
    "load_results", "save_figure", "new_figure", "table", "render_readme", "fmt", "rel_diff", "utc_now",
]

HERE = os.path.dirname(os.path.abspath(__file__))


def child_error(stderr: str, limit: int = 3000) -> str:
    """The tail of a failed child's ``stderr`` for the JSON, with this checkout's and the environment's
    paths made relative (a results file names no machine's directories)."""
    import sys

    text = stderr[-limit:]
    for root in sorted({os.path.dirname(HERE), sys.prefix, sys.base_prefix}, key=len, reverse=True):
        text = text.replace(root + os.sep, "")
    return text
DEFAULT_RESULTS_DIR = os.path.join(HERE, "results")
README_PATH = os.path.join(HERE, "README.md")


# ----------------------------------------------------------------------------- JAX set-up

def enable_x64() -> None:
    """float64 must be switched on before any array is made; float32 runs pass float32 inputs."""
    import jax

    jax.config.update("jax_enable_x64", True)


def jnp_dtype(name: str):
    """``"float32"``/``"float64"`` -> the NumPy dtype JAX uses."""
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {name!r}.")
    return np.dtype(name)


def rel_diff(a: float, b: float) -> float:
    """``|a - b| / |b|`` (``inf`` if ``b == 0 != a``)."""
    a, b = float(a), float(b)
    if a == b:
        return 0.0
    return abs(a - b) / abs(b) if b != 0 else math.inf


# ----------------------------------------------------------------------------- timing

def _block(out):
    import jax

    return jax.block_until_ready(out)


def time_call(fn: Callable[[], Any], repeats: int = 7, warmup: int = 1, min_sample_s: float = 0.02,
              max_number: int = 10_000) -> dict:
    """Times ``fn()`` (no arguments) warm.

    Args:
      fn: the call; its output is passed to ``jax.block_until_ready``.
      repeats: samples; the median and IQR are over these.
      warmup: untimed calls first (compilation, caches).
      min_sample_s: a sample repeats ``fn`` ``number`` times so that it lasts
        at least this long (fast calls are otherwise dominated by timer noise).

    Returns:
      ``{"median_s", "q1_s", "q3_s", "iqr_s", "min_s", "max_s", "repeats", "number"}``.
    """
    for _ in range(warmup):
        _block(fn())
    t0 = time.perf_counter()
    _block(fn())
    once = time.perf_counter() - t0
    number = 1 if once >= min_sample_s else int(min(max_number, math.ceil(min_sample_s / max(once, 1e-7))))
    samples = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            for _ in range(number):
                out = fn()
            _block(out)
            samples.append((time.perf_counter() - t0) / number)
    finally:
        if gc_was:
            gc.enable()
    q1, med, q3 = np.percentile(samples, [25, 50, 75])
    return {"median_s": float(med), "q1_s": float(q1), "q3_s": float(q3), "iqr_s": float(q3 - q1),
            "min_s": float(np.min(samples)), "max_s": float(np.max(samples)),
            "repeats": len(samples), "number": number}


_WARMED = False


def warm_compiler() -> None:
    """Compiles a trivial function once, so one-off backend start-up is not billed to the first compile."""
    global _WARMED
    if not _WARMED:
        import jax
        import jax.numpy as jnp

        jax.block_until_ready(jax.jit(lambda x: jnp.sin(x) @ x)(jnp.ones((3, 3))))
        jax.block_until_ready(jax.jit(lambda x: jax.lax.scan(lambda c, a: (c + a, c), 0.0, x))(jnp.ones(3)))
        _WARMED = True


def iqr_ms(timing: dict):
    """The IQR of a :func:`time_call` result in ms, or ``None`` with fewer than 3 samples."""
    return timing["iqr_s"] * 1e3 if timing.get("repeats", 0) >= 3 else None


def aot_compile(fn: Callable, *args, clear: bool = True):
    """Compiles ``jax.jit(fn)`` ahead of time for ``args`` and times it.

    Returns ``(compiled, {"lower_s", "compile_s", "total_s"})``: ``lower_s``
    is tracing plus lowering, ``compile_s`` the XLA compilation, ``total_s``
    their sum (the number reported as "compile time"). With ``clear`` the JAX
    caches are emptied first, so nothing compiled earlier is reused.
    """
    import jax

    warm_compiler()
    if clear:
        jax.clear_caches()
    t0 = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    return compiled, {"lower_s": t1 - t0, "compile_s": t2 - t1, "total_s": t2 - t0}


def first_call_overhead(fn: Callable[[], Any], warm_s: float) -> dict:
    """First call of ``fn`` after ``jax.clear_caches()``, and that minus a warm call (``warm_s``)."""
    import jax

    warm_compiler()
    jax.clear_caches()
    t0 = time.perf_counter()
    _block(fn())
    first = time.perf_counter() - t0
    return {"first_call_s": first, "first_minus_warm_s": first - warm_s}


# ----------------------------------------------------------------------------- machine

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """CPU model, cores, platform and library versions, JAX backend and device kind."""
    import jax
    import jaxlib

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    devices = jax.devices()
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "x64_enabled": bool(jax.config.jax_enable_x64),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def machine_line(m: dict) -> str:
    """One line for the README: where the numbers were measured."""
    return (f"{m['cpu_model']}, {m['cpus_usable']} usable of {m['cpu_count']} cores; "
            f"JAX {m['jax']} (jaxlib {m['jaxlib']}) on {m['backend']} ({m['device_kind']}); "
            f"NumPy {m['numpy']}; Python {m['python']}; {m['platform']}"
            + (f"; load average {m['load_average_1min']:.1f} at start" if m.get("load_average_1min") is not None
               else ""))


# ----------------------------------------------------------------------------- files

def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):  # a JAX array
        return _jsonable(np.asarray(obj))
    return obj


def write_json(results_dir: str, name: str, data: dict) -> str:
    """Writes ``data`` (NaN/inf -> null) to ``<results_dir>/<name>.json``; returns the path."""
    os.makedirs(results_dir, exist_ok=True)
    path = os.path.join(results_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(_jsonable(data), f, indent=1, sort_keys=False)
        f.write("\n")
    return path


def load_results(results_dir: str) -> dict:
    """``{name: data}`` for every ``*.json`` in ``results_dir``."""
    out = {}
    if not os.path.isdir(results_dir):
        return out
    for fn in sorted(os.listdir(results_dir)):
        if fn.endswith(".json"):
            with open(os.path.join(results_dir, fn)) as f:
                data = json.load(f)
            out[data.get("name", fn[:-5])] = data
    return out


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 6.0, height: float = 4.2):
    """A matplotlib figure (Agg backend) with a grid of axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, axes


def save_figure(fig, results_dir: str, filename: str) -> str:
    """Saves ``fig`` as ``<results_dir>/<filename>`` (PNG, 120 dpi) and closes it; returns the file name."""
    import matplotlib.pyplot as plt

    os.makedirs(results_dir, exist_ok=True)
    fig.tight_layout()
    fig.savefig(os.path.join(results_dir, filename), dpi=120)
    plt.close(fig)
    return filename


# ----------------------------------------------------------------------------- tables

def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], note: str = "") -> dict:
    """A table for the README: raw values; :func:`fmt` formats them when rendering."""
    return {"title": title, "columns": list(columns), "rows": [list(r) for r in rows], "note": note}


def fmt(v) -> str:
    """Formats a table cell: 4 significant digits, ``yes/no`` for booleans, ``-`` for missing."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        if v == 0:
            return "0"
        a = abs(v)
        if 1e-3 <= a < 1e5:
            s = f"{v:.4g}"
        else:
            s = f"{v:.3g}"
        return s
    return str(v).replace("|", "\\|")


def _render_table(t: dict) -> list:
    lines = [f"**{t['title']}**", ""] if t.get("title") else []
    lines.append("| " + " | ".join(t["columns"]) + " |")
    lines.append("|" + "|".join("---" for _ in t["columns"]) + "|")
    for r in t["rows"]:
        lines.append("| " + " | ".join(fmt(v) for v in r) + " |")
    if t.get("note"):
        lines += ["", t["note"]]
    lines.append("")
    return lines


README_HEADER = """# Benchmarks

Generated by `python -m benchmarks` from the JSON files in `{results}/`; do not
edit by hand (rerun, or `python -m benchmarks --readme-only` to regenerate this
file from existing results).

## How to rerun

```
python -m benchmarks                         # everything, full sizes
python -m benchmarks --quick                 # CI sizes (a few minutes on 2 cores)
python -m benchmarks --only single_solve     # one benchmark (repeatable, or comma-separated)
python -m benchmarks --dtype float32         # float32 | float64 | both (default: each benchmark's own)
python -m benchmarks --results-dir /tmp/r    # write JSON/PNG (and a README) elsewhere
python -m benchmarks --list                  # the registered benchmarks
```

## How numbers are measured

- **Run time**: median of warm calls (after a warm-up call), each ending in
  `jax.block_until_ready`; calls shorter than ~20 ms are repeated within a
  sample. The spread given is the interquartile range (IQR). Garbage
  collection is off while timing. Baselines are measured in the same process,
  right after the JAX code, on the same machine.
- **Compile time** is reported separately and never included in run time:
  after `jax.clear_caches()`, the wall time of `jax.jit(f).lower(args)` plus
  `.compile()` (tracing + lowering + XLA compilation) of the public
  `ilqg_jax.solve` for that problem, shape and dtype. The first call after
  clearing the caches minus a warm call is recorded in the JSON as a cross-check.
- **`ilqg_jax.solve`** (public) validates its inputs in Python on every call
  before running the compiled program; **compiled** rows call the
  ahead-of-time compiled executable directly, i.e. the cost inside `jit`,
  `vmap` or an MPC loop. Time per iteration = time per solve / iterations.
- **dtype**: float64 unless a row says float32 (`jax_enable_x64` is on; float32
  runs pass float32 inputs, and the output dtype is checked). The NumPy
  baseline always runs in float64.
- **NumPy FD baseline** (`benchmarks/numpy_ilqr.py`): the seed notebook's
  method with its bugs fixed, central finite differences, the same iteration
  as `ilqg_jax.solve`. "loop" evaluates the finite differences one point per
  call, as the seed did; "vectorized" evaluates a whole trajectory's
  perturbations in one NumPy call (a stronger baseline). Rollouts, line search
  and backward pass are Python loops over time in both.
"""


def render_readme(results_dir: str, readme_path: str, order: Sequence[str] = ()) -> str:
    """Writes the Markdown README from every JSON file in ``results_dir``; returns its text.

    Sections follow ``order`` (the registry), then any other result files.
    """
    results = load_results(results_dir)
    rel = os.path.relpath(results_dir, os.path.dirname(os.path.abspath(readme_path)))
    lines = [README_HEADER.format(results=rel)]
    names = [n for n in order if n in results] + [n for n in sorted(results) if n not in order]
    if not names:
        lines.append("_No results yet: run `python -m benchmarks`._\n")
    for name in names:
        d = results[name]
        lines.append(f"## {d.get('title', name)}")
        lines.append("")
        mode = "quick" if d.get("quick") else "full"
        lines.append(f"_`{d.get('command', 'python -m benchmarks --only ' + name)}` ({mode} mode, "
                     f"{fmt(d.get('duration_s'))} s, {d.get('created', '?')})._  ")
        if d.get("machine"):
            lines.append(f"_Machine: {machine_line(d['machine'])}._")
        lines.append("")
        if d.get("description"):
            lines += [d["description"].strip(), ""]
        for t in d.get("tables", []):
            lines += _render_table(t)
        checks = d.get("checks") or {}
        if checks:
            lines.append("Checks: " + ", ".join(f"`{k}` {'pass' if v else '**FAIL**'}"
                                                for k, v in checks.items()) + ".")
            lines.append("")
        for fig in d.get("figures", []):
            lines.append(f"![{fig}]({rel}/{fig})")
            lines.append("")
    text = "\n".join(lines).rstrip() + "\n"
    with open(readme_path, "w") as f:
        f.write(text)
    return text


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

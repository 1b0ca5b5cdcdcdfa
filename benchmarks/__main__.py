"""``python -m benchmarks``: run the registered benchmarks, write JSON/PNG and the README.

Adding a benchmark: a module ``benchmarks/<name>.py`` with ``TITLE`` and
``run(quick: bool, dtypes: tuple[str, ...], results_dir: str) -> dict`` (it
may accept only some of these keywords), plus its name in :data:`REGISTRY`.
``run`` returns a dict with at least ``tables`` (see ``common.table``) and
optionally ``description``, ``figures`` (PNG names in ``results_dir``),
``checks`` (name -> bool; a false check makes the command exit 1) and ``data``
(raw numbers). The harness adds the machine, the command and the timing, and
writes ``<results_dir>/<name>.json``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import time
import traceback

#: Benchmark modules, in README order.
REGISTRY = [
    "single_solve",
    "convergence",
    "backward",
    "limits",
    "derivative_accuracy",
    "derivative_speed",
    "end_to_end",
    "large",
    "batch",
    "mpc",
    "gradients",
    "constrained",
    "peers",
]


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats (CI)")
    p.add_argument("--only", action="append", default=None, metavar="NAME",
                   help="run only these benchmarks (repeatable or comma-separated)")
    p.add_argument("--dtype", choices=("float32", "float64", "both"), default=None,
                   help="precision of the JAX runs (default: each benchmark's own)")
    p.add_argument("--results-dir", default=None,
                   help="where JSON/PNG go (default benchmarks/results; the README then goes there too)")
    p.add_argument("--readme", default=None, help="README path (default benchmarks/README.md, or "
                   "<results-dir>/README.md with --results-dir)")
    p.add_argument("--no-readme", action="store_true", help="do not regenerate the README")
    p.add_argument("--readme-only", action="store_true", help="only regenerate the README from existing JSON")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return p.parse_args(argv)


def _call_run(module, quick, dtypes, results_dir):
    params = inspect.signature(module.run).parameters
    kwargs = {}
    if "dtypes" in params and dtypes is not None:
        kwargs["dtypes"] = dtypes
    if "results_dir" in params:
        kwargs["results_dir"] = results_dir
    return module.run(quick, **kwargs)


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    from benchmarks import common

    results_dir = os.path.abspath(args.results_dir or common.DEFAULT_RESULTS_DIR)
    readme = args.readme or (common.README_PATH if args.results_dir is None
                             else os.path.join(results_dir, "README.md"))
    if args.list:
        for name in REGISTRY:
            mod = importlib.import_module(f"benchmarks.{name}")
            print(f"{name:22s} {getattr(mod, 'TITLE', '')}")
        return 0
    if args.readme_only:
        common.render_readme(results_dir, readme, REGISTRY)
        print(f"wrote {readme}")
        return 0

    names = REGISTRY
    if args.only:
        names = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
        unknown = [n for n in names if n not in REGISTRY]
        if unknown:
            print(f"unknown benchmark(s) {unknown}; known: {REGISTRY}", file=sys.stderr)
            return 2
    dtypes = None if args.dtype is None else (("float32", "float64") if args.dtype == "both" else (args.dtype,))

    common.enable_x64()
    machine = common.machine_info()
    print(f"machine: {common.machine_line(machine)}", flush=True)
    failed = []
    t_all = time.perf_counter()
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None   # a shared machine's load skews timings
        t0 = time.perf_counter()
        try:
            mod = importlib.import_module(f"benchmarks.{name}")
            out = _call_run(mod, args.quick, dtypes, results_dir)
        except Exception:  # report and go on with the next benchmark
            traceback.print_exc()
            failed.append(name)
            continue
        duration = time.perf_counter() - t0
        cmd = "python -m benchmarks" + (" --quick" if args.quick else "") + f" --only {name}"
        if args.dtype:
            cmd += f" --dtype {args.dtype}"
        data = {"name": name, "title": getattr(mod, "TITLE", name), "quick": bool(args.quick),
                "command": cmd, "created": common.utc_now(), "duration_s": duration,
                "machine": dict(machine, load_average_1min=load),
                "tables": [], "checks": {}, "data": {}}
        data.update(out)
        path = common.write_json(results_dir, name, data)
        for t in out.get("tables", []):
            print()
            print("\n".join(common._render_table(t)))
        bad = [k for k, v in (out.get("checks") or {}).items() if not v]
        if bad:
            print(f"FAILED checks in {name}: {bad}", file=sys.stderr)
            failed.append(name)
        print(f"{name}: {duration:.1f} s -> {path}", flush=True)

    if not args.no_readme:
        common.render_readme(results_dir, readme, REGISTRY)
        print(f"\nwrote {readme}")
    print(f"total {time.perf_counter() - t_all:.1f} s")
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

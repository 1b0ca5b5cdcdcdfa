"""The backward pass alone: sequential ``lax.scan`` against the parallel-in-time associative scan.

Random time-varying LQ expansions (near-identity ``fx``, convex joint cost
Hessians with cross terms, float64) of a unicycle-sized problem (n = 3,
m = 2) and of an n = 4, m = 1 one, for T = 100, 1,000 and 10,000. Both
schedules get the same ``Derivatives``; the outputs are checked equal (1e-10
relative). ``mu = 0`` is the parallel pass's fast path (one associative scan);
``mu > 0`` needs policy-iteration rounds or falls back to the sequential pass
(``ilqg_jax.parallel``), so it is timed too. Run time: median of warm calls,
each ending in ``block_until_ready``; compile time (lower + XLA compile)
separately. GPU rows are not measured on a CPU-only run.
"""

from __future__ import annotations

from benchmarks import common

TITLE = "Backward pass alone: sequential scan vs parallel (associative) scan"
#: Targets the results are reported against (not enforced: measured, never faked).
TARGETS = {"T100_us": 100.0, "T10000_speedup": 5.0}
MU_POSITIVE = 1e-3


def _derivatives(n, m, T, seed=0):
    import jax.numpy as jnp
    import numpy as np

    from ilqg_jax.derivatives import Derivatives

    rng = np.random.default_rng(seed)
    W = rng.standard_normal((T + 1, n + m, n + m))
    W = W @ np.swapaxes(W, 1, 2) + 0.5 * np.eye(n + m)
    arrays = (np.eye(n) + 0.05 * rng.standard_normal((T, n, n)), 0.1 * rng.standard_normal((T, n, m)),
              rng.standard_normal((T + 1, n)), rng.standard_normal((T, m)), W[:, :n, :n], W[:-1, n:, n:],
              W[:-1, n:, :n])
    return Derivatives(*(jnp.asarray(a) for a in arrays))


def _max_rel_diff(a, b) -> float:
    import numpy as np

    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)) / (1.0 + np.abs(np.asarray(y)))))
               for x, y in zip(a[:5], b[:5]))


def _case(n, m, T, quick):
    import jax.numpy as jnp

    from ilqg_jax import backward, parallel

    d = _derivatives(n, m, T)
    row = {"n": n, "m": m, "T": T}
    repeats = 5 if quick else 15
    for mu, tag in ((0.0, "mu0"), (MU_POSITIVE, "mu_pos")):
        mu_a = jnp.asarray(mu)
        seq, t_seq = common.aot_compile(lambda d, mu: backward.backward_pass(d, mu), d, mu_a)
        par, t_par = common.aot_compile(lambda d, mu: parallel._fixed_point(d, mu), d, mu_a)
        ref, (out, rounds) = seq(d, mu_a), par(d, mu_a)
        row[f"seq_{tag}_us"] = common.time_call(lambda: seq(d, mu_a), repeats=repeats)["median_s"] * 1e6
        row[f"par_{tag}_us"] = common.time_call(lambda: par(d, mu_a), repeats=repeats)["median_s"] * 1e6
        row[f"rounds_{tag}"] = int(rounds)
        row[f"diff_{tag}"] = _max_rel_diff(out, ref)
        row[f"compile_seq_{tag}_s"], row[f"compile_par_{tag}_s"] = t_seq["total_s"], t_par["total_s"]
        if quick:
            break
    return row


def run(quick: bool = False):
    from ilqg_jax import parallel

    sizes = [(3, 2, 100)] if quick else [(n, m, T) for n, m in ((3, 2), (4, 1))
                                                       for T in (100, 1000, 10_000)]
    rows = [_case(n, m, T, quick) for n, m, T in sizes]
    table_rows = []
    for r in rows:
        table_rows.append([f"{r['n']}/{r['m']}", r["T"], "cpu", r["seq_mu0_us"], r["par_mu0_us"],
                           r["seq_mu0_us"] / r["par_mu0_us"], r.get("seq_mu_pos_us"), r.get("par_mu_pos_us"),
                           r.get("rounds_mu_pos"), r["compile_seq_mu0_s"], r["compile_par_mu0_s"],
                           max(r["diff_mu0"], r.get("diff_mu_pos", 0.0))])
        table_rows.append([f"{r['n']}/{r['m']}", r["T"], "gpu"] + ["not measured"] * 9)
    cols = ["n/m", "T", "device", "sequential µs (mu=0)", "parallel µs (mu=0)", "speed-up (mu=0)",
            f"sequential µs (mu={MU_POSITIVE:g})", f"parallel µs (mu={MU_POSITIVE:g})",
            "parallel rounds (5 = fallback)", "compile sequential s", "compile parallel s", "max rel. diff"]
    by_T = {(r["n"], r["T"]): r for r in rows}
    t100 = by_T[(3, 100)]["par_mu0_us"]
    checks = {"parallel_equals_sequential": all(max(r["diff_mu0"], r.get("diff_mu_pos", 0.0)) <= 1e-10
                                                for r in rows)}
    targets = {"parallel T=100 n=3 m=2 <= 100 µs": t100 <= TARGETS["T100_us"]}
    if (3, 10_000) in by_T:
        r = by_T[(3, 10_000)]
        targets["parallel T=10,000 >= 5x sequential"] = r["seq_mu0_us"] / r["par_mu0_us"] >= TARGETS["T10000_speedup"]
    note = ("Targets (measured, not enforced): " + "; ".join(f"{k}: {'met' if v else 'NOT met'}"
                                                              for k, v in targets.items())
            + f". `choose_backward('cpu', ...)` = {parallel.choose_backward('cpu', 100, 3, 2)!r}.")
    return {"description": __doc__, "tables": [common.table("Backward pass, float64", cols, table_rows, note)],
            "checks": checks, "data": {"rows": rows, "targets": targets}}

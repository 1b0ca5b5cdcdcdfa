"""Independent reference solutions the tests compare the solver with (NumPy, float64)."""

import numpy as np


def riccati(lq, x0, T):
    """Time-varying LQR with affine dynamics by the Riccati recursion: the optimal ``(xs, us, cost)``.

    ``lq`` holds ``A: (T, n, n), B: (T, n, m), c: (T, n)`` of ``x' = A x + B u + c``
    and the cost ``sum_t 1/2 x'Q x + 1/2 u'R u + u'S x + q'x + r'u + 1/2 x'Qf x + qf'x``
    (``Q, R, S, q, r`` per step, ``Qf, qf`` terminal), in absolute coordinates.
    """
    P, s = lq["Qf"], lq["qf"]
    gains = []
    for t in reversed(range(T)):
        A, B, c = lq["A"][t], lq["B"][t], lq["c"][t]
        sc = s + P @ c
        Quu, Qux = lq["R"][t] + B.T @ P @ B, lq["S"][t] + B.T @ P @ A
        Qu, Qxx, Qx = lq["r"][t] + B.T @ sc, lq["Q"][t] + A.T @ P @ A, lq["q"][t] + A.T @ sc
        K, k = -np.linalg.solve(Quu, Qux), -np.linalg.solve(Quu, Qu)
        P, s = Qxx + Qux.T @ K, Qx + Qux.T @ k
        P = 0.5 * (P + P.T)
        gains.append((K, k))
    xs, us, cost = [np.asarray(x0)], [], 0.0
    for t, (K, k) in enumerate(reversed(gains)):
        x = xs[-1]
        u = K @ x + k
        cost += (0.5 * x @ lq["Q"][t] @ x + 0.5 * u @ lq["R"][t] @ u + u @ lq["S"][t] @ x + lq["q"][t] @ x
                 + lq["r"][t] @ u)
        us.append(u)
        xs.append(lq["A"][t] @ x + lq["B"][t] @ u + lq["c"][t])
    cost += 0.5 * xs[-1] @ lq["Qf"] @ xs[-1] + lq["qf"] @ xs[-1]
    return np.array(xs), np.array(us), cost

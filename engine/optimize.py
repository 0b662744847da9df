"""Optimizers over a value-and-gradient function, pixels kept in [0, 1].

They know nothing of TensorFlow or ONNX Runtime: ``f(x) -> (loss, gradient, parts)`` on a
float32 array is all they need. One iteration is one evaluation of ``f`` (one forward and
backward pass), so the time a run costs is known before it starts. Both stop early, keeping the
best image so far, when ``stop()`` turns true (checked before each evaluation: a server or a
signal handler sets it from another thread) or on KeyboardInterrupt.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, minimize


@dataclass
class Result:
    image: np.ndarray | None   # the lowest-loss image evaluated; None when stopped before the first evaluation
    loss: float
    parts: dict
    iterations: int
    interrupted: bool = False


class _Budget(Exception):
    pass


class _Stop(Exception):
    pass


class _Tracker:
    """Counts evaluations, keeps the best image, reports each one, stops at the budget or when asked."""

    def __init__(self, f, iterations, callback, stop):
        self.f, self.iterations, self.callback, self.stop = f, iterations, callback, stop
        self.count, self.best = 0, None

    def __call__(self, x):
        if self.count >= self.iterations:
            raise _Budget
        if self.stop is not None and self.stop():
            raise _Stop
        loss, grad, parts = self.f(x)
        self.count += 1
        if self.best is None or loss < self.best.loss:
            self.best = Result(x.copy(), loss, parts, self.count)
        if self.callback:
            self.callback(self.count, loss, parts, x)
        return loss, grad

    def result(self, interrupted=False) -> Result:
        best = self.best or Result(None, float("nan"), {}, 0)
        best.iterations = self.count
        best.interrupted = interrupted
        return best


def adam(f, x0, iterations, *, lr=0.02, beta1=0.9, beta2=0.999, eps=1e-8, callback=None, stop=None) -> Result:
    """Adam (Kingma & Ba), clipping the pixels to [0, 1] after each step."""
    tracker = _Tracker(f, iterations, callback, stop)
    x = np.clip(np.asarray(x0, np.float32), 0, 1)
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    try:
        for t in range(1, iterations + 1):
            _, grad = tracker(x)
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad * grad
            step = lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)
            x = np.clip(x - step, 0, 1).astype(np.float32)
    except (_Stop, KeyboardInterrupt):
        return tracker.result(interrupted=True)
    return tracker.result()


def lbfgs(f, x0, iterations, *, history=20, callback=None, stop=None) -> Result:
    """scipy's L-BFGS-B with box bounds [0, 1], run for exactly ``iterations`` evaluations."""
    shape = np.shape(x0)
    tracker = _Tracker(f, iterations, callback, stop)

    def fun(flat):
        loss, grad = tracker(flat.reshape(shape).astype(np.float32))
        return float(loss), np.asarray(grad, np.float64).ravel()

    x0 = np.clip(np.asarray(x0, np.float64), 0, 1).ravel()
    try:
        # tolerances of zero: stop on the evaluation budget, not on scipy's convergence tests
        minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=Bounds(np.zeros(x0.size), np.ones(x0.size)),
                 options={"maxiter": iterations, "maxfun": iterations + 1, "maxcor": history,
                          "ftol": 0.0, "gtol": 0.0})
    except _Budget:
        pass
    except (_Stop, KeyboardInterrupt):
        return tracker.result(interrupted=True)
    return tracker.result()

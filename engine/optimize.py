"""Optimizers over a value-and-gradient function, pixels kept in [0, 1].

They know nothing of TensorFlow or ONNX Runtime: ``f(x) -> (loss, gradient, parts)`` on a
float32 array is all they need. One iteration is one evaluation of ``f`` (one forward and
backward pass), so the time a run costs is known before it starts. Both stop early, keeping the
best image so far, when ``stop()`` turns true (checked before each evaluation: a server or a
signal handler sets it from another thread). A KeyboardInterrupt is not a stop: it goes through,
with no picture (the CLI's first Ctrl-C sets ``stop``; its second aborts).
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass
class Result:
    image: np.ndarray | None   # the lowest-loss image evaluated; None when stopped before the first evaluation
    loss: float
    parts: dict
    iterations: int
    interrupted: bool = False
    state: object = None       # what the optimizer can go on from (Adam's moments)


class _Budget(Exception):
    pass


class _Stop(Exception):
    pass


class _Tracker:
    """Counts evaluations, keeps the best image, reports each one (with the seconds ``f`` took, so
    that the optimizer's own time is known), stops at the budget or when asked."""

    def __init__(self, f, iterations, callback, stop, enough=None):
        self.f, self.iterations, self.callback, self.stop, self.enough = f, iterations, callback, stop, enough
        self.count, self.best, self.done = 0, None, False

    def __call__(self, x):
        if self.count >= self.iterations or self.done:
            raise _Budget
        if self.stop is not None and self.stop():
            raise _Stop
        begin = time.perf_counter()
        loss, grad, parts = self.f(x)
        seconds = time.perf_counter() - begin
        self.count += 1
        self.last_parts = parts
        if self.best is None or loss < self.best.loss:
            self.best = Result(x.copy(), loss, parts, self.count)
        if self.callback:
            self.callback(self.count, loss, parts, x, seconds)
        if self.enough is not None and self.enough(loss):
            self.done = True
        return loss, grad

    def result(self, interrupted=False) -> Result:
        best = self.best or Result(None, float("nan"), {}, 0)
        best.iterations = self.count
        best.interrupted = interrupted
        return best


@dataclass
class AdamState:
    """Adam's moments and step count, carried from one scale to the next (resized with the picture)."""
    m: np.ndarray
    v: np.ndarray
    t: int


def adam(f, x0, iterations, *, lr=0.02, beta1=0.9, beta2=0.999, eps=1e-8, average=0.9, state=None,
         callback=None, stop=None, enough=None) -> Result:
    """Adam (Kingma & Ba), clipping the pixels to [0, 1] after each step.

    ``average``: the picture returned is the bias-corrected exponential moving average of the
    iterates with this decay (0: the lowest-loss picture evaluated), as crowsonkb/style-transfer-
    pytorch does: Adam's iterates jitter around the minimum at a fixed step size, and their average
    is sharper and less noisy than any one of them. Its loss is then that of the last evaluation.
    ``state``: an ``AdamState`` to go on from (the previous scale's, resized); the result's
    ``state`` is where this one ended. ``enough(loss)``: called after each evaluation; once it
    is true the run ends as if its budget were spent (``engine.schedule.Plateau``)."""
    tracker = _Tracker(f, iterations, callback, stop, enough)
    x = np.clip(np.asarray(x0, np.float32), 0, 1)
    m = np.zeros_like(x) if state is None else state.m
    v = np.zeros_like(x) if state is None else state.v
    start = 0 if state is None else state.t
    mean, weight, last = np.zeros_like(x), 0.0, None
    interrupted = False
    try:
        for t in range(start + 1, start + iterations + 1):
            last = tracker(x)
            grad = last[1]
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad * grad
            step = lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)
            x = np.clip(x - step, 0, 1).astype(np.float32)
            if average:
                mean = average * mean + (1 - average) * x
                weight = average * weight + (1 - average)
    except _Stop:
        interrupted = True
    result = tracker.result(interrupted=interrupted)
    if average and weight > 0:
        result.image = (mean / np.float32(weight)).astype(np.float32)
        result.loss = float(last[0])
        result.parts = tracker.last_parts
    result.state = AdamState(m, v, start + tracker.count)
    return result


def lbfgs(f, x0, iterations, *, history=20, first_step=0.05, pairs=None, callback=None, stop=None,
          enough=None) -> Result:
    """Projected L-BFGS in float32: pixels that sit on a bound with the gradient pushing out of
    [0, 1] are held, the others move along the L-BFGS direction, and each trial point is
    projected back into the box (backtracking until the Armijo condition holds). This differs
    from scipy's L-BFGS-B (generalized Cauchy point, subspace minimization, float64), which at
    512 px spent ~110 ms of its own per evaluation and ~1.5 s at the start of every scale here,
    against ~10 ms for this; both reach the same costs (tests/test_optimize.py, docs/BENCHMARKS.md).

    ``first_step``: the largest pixel change of the very first trial, where there is no curvature
    yet to size the step (a unit step along the raw gradient overshoots by orders of magnitude).
    ``pairs``: curvature pairs ``(s, y)`` to start from (the previous scale's, resized); a list is
    taken over (emptied), so that a pair the history drops is freed, not kept by the caller. The
    result's ``state`` holds this run's. ``enough``: as for ``adam``."""
    shape = np.shape(x0)
    tracker = _Tracker(f, iterations, callback, stop, enough)
    x = np.clip(np.asarray(x0, np.float32), 0, 1).reshape(-1)
    pairs = _history(pairs if isinstance(pairs, list) else list(pairs or []), history)

    def evaluate(point):
        loss, grad = tracker(point.reshape(shape))
        return float(loss), np.ascontiguousarray(grad, np.float32).reshape(-1)

    try:
        fx, g = evaluate(x)
        while True:
            # held: on a bound, pushed outwards; the direction leaves them where they are
            held = ((x <= 0) & (g > 0)) | ((x >= 1) & (g < 0))
            direction = _two_loop(np.where(held, np.float32(0), g), pairs)
            np.negative(direction, out=direction)
            direction[held] = 0
            slope = sdot(g, direction)
            if not slope < 0:  # not a descent direction (stale curvature): start again from the gradient
                pairs.clear()
                direction = np.where(held, np.float32(0), -g)
                slope = sdot(g, direction)
                if not slope < 0:
                    break   # nothing can move: a stationary point of the box-constrained problem
            alpha = 1.0 if pairs else first_step / max(float(np.max(np.abs(direction))), 1e-30)
            while True:
                trial = np.clip(x + np.float32(alpha) * direction, 0, 1)
                f_trial, g_trial = evaluate(trial)
                step = trial - x
                decrease = sdot(g, step)
                if math.isfinite(f_trial) and f_trial <= fx + 1e-4 * decrease:
                    break
                # backtrack: the minimum of the quadratic through f(0), f'(0) and f(alpha), kept in [0.1, 0.5] alpha
                dropped = f_trial - fx - slope * alpha
                guess = -slope * alpha * alpha / (2 * dropped) if math.isfinite(dropped) and dropped > 0 else 0.5 * alpha
                alpha = min(max(guess, 0.1 * alpha), 0.5 * alpha)
            y = g_trial - g
            sy = sdot(step, y)
            if sy > 1e-10 * sdot(y, y):  # curvature along the step: keep the pair (else skip it)
                pairs.append((step, y, 1.0 / sy))
            x, fx, g = trial, f_trial, g_trial
    except _Budget:
        pass
    except _Stop:
        return _with_state(tracker.result(interrupted=True), pairs, shape)
    return _with_state(tracker.result(), pairs, shape)


def _history(given: list, length: int) -> deque:
    """``(s, y, 1 / s.y)`` of the pairs with curvature, oldest first, taken out of ``given``."""
    pairs = deque(maxlen=length)
    while given:
        s, y = (np.ascontiguousarray(v, np.float32).reshape(-1) for v in given.pop(0))
        if sdot(s, y) > 1e-10 * sdot(y, y):
            pairs.append((s, y, 1.0 / sdot(s, y)))
    return pairs


def _with_state(result: Result, pairs, shape) -> Result:
    result.state = [(s.reshape(shape), y.reshape(shape)) for s, y, _ in pairs]
    return result


def sdot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def _two_loop(gradient: np.ndarray, pairs) -> np.ndarray:
    """``H gradient`` for the L-BFGS inverse Hessian of ``pairs`` (Nocedal & Wright, Algorithm 7.4),
    scaled by ``s.y / y.y`` of the newest pair. numpy only (BLAS dots), so that the engine runs
    where only onnxruntime, numpy and Pillow are installed: 11 ms at 512 px here, 6.5 ms with
    scipy's in-place BLAS axpy."""
    q = gradient.copy()
    scaled = np.empty_like(q)
    alphas = []
    for s, y, rho in reversed(pairs):
        a = rho * sdot(s, q)
        alphas.append(a)
        q -= np.multiply(y, np.float32(a), out=scaled)
    if pairs:
        s, y, _ = pairs[-1]
        q *= np.float32(sdot(s, y) / sdot(y, y))
    for (s, y, rho), a in zip(pairs, reversed(alphas)):
        b = rho * sdot(y, q)
        q += np.multiply(s, np.float32(a - b), out=scaled)
    return q


def scipy_lbfgs(f, x0, iterations, *, history=20, callback=None, stop=None) -> Result:
    """scipy's L-BFGS-B with box bounds [0, 1], run for exactly ``iterations`` evaluations: the
    reference ``lbfgs`` is measured and tested against (scipy is needed for this one only)."""
    from scipy.optimize import Bounds, minimize
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
    except _Stop:
        return tracker.result(interrupted=True)
    return tracker.result()

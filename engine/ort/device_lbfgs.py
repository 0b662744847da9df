"""Projected L-BFGS with every picture-sized vector kept on the step's device.

On a GPU the step at 512 px takes ~10 ms, and the host optimizer (``engine.optimize.lbfgs``: a
two-loop recursion over 20 curvature pairs, 80 passes over 3 MB vectors, plus the gradient's trip
to the host and the image's back) took 30 ms more per evaluation on the H200 machine
(docs/BENCHMARKS.md). Here the vectors stay where the step computed them and the host handles
scalars and 2m-sized arrays only: the direction comes from the compact representation of the
L-BFGS inverse Hessian (Byrd, Nocedal & Schnabel 1994),

    H g = gamma g + S a + gamma Y b,   [a; b] = [[R^-T (D + gamma Y'Y) R^-1, -R^-T], [-R^-1, 0]] [S'g; gamma Y'g]

(R the upper triangle of S'Y, D its diagonal), which needs two matrix-vector products with the
history on the device and an m x m solve on the host, where the two-loop recursion needs 4m
dependent vector operations. Same iterates as the host version up to rounding: the same
projection, held pixels, Armijo backtracking and pair test. The small graphs are built here
with onnx.helper and run by ONNX Runtime on the step's provider. No TensorFlow here.
"""
from __future__ import annotations

import math
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from ..optimize import Result

OPSET = 17
IMAGE = ["one", "h", "w", "three"]
HISTORY = ["m", "one", "h", "w", "three"]


def _value(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def _model(nodes, inputs, outputs, constants=()) -> bytes:
    graph = helper.make_graph(nodes, "lbfgs", inputs, outputs, initializer=list(constants))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model.SerializeToString()


def _scalar(name, value):
    return helper.make_tensor(name, TensorProto.FLOAT, [], [value])


def _direction_products() -> bytes:
    """x, g, S, Y -> the gradient with held pixels zeroed, which pixels are held, S'g, Y'g."""
    n = helper.make_node
    nodes = [n("LessOrEqual", ["x", "zero"], ["at0"]), n("Greater", ["g", "zero"], ["up"]),
             n("GreaterOrEqual", ["x", "one"], ["at1"]), n("Less", ["g", "zero"], ["down"]),
             n("And", ["at0", "up"], ["out0"]), n("And", ["at1", "down"], ["out1"]),
             n("Or", ["out0", "out1"], ["held"]), n("Where", ["held", "zero", "g"], ["gm"]),
             n("Flatten", ["gm"], ["gf"], axis=0), n("Flatten", ["S"], ["Sf"], axis=1),
             n("Flatten", ["Y"], ["Yf"], axis=1),
             n("Gemm", ["Sf", "gf"], ["SG"], transB=1), n("Gemm", ["Yf", "gf"], ["YG"], transB=1)]
    return _model(nodes, [_value("x", IMAGE), _value("g", IMAGE), _value("S", HISTORY), _value("Y", HISTORY)],
                  [_value("gm", IMAGE), _value("held", IMAGE, TensorProto.BOOL), _value("SG", ["m", 1]),
                   _value("YG", ["m", 1])], [_scalar("zero", 0.0), _scalar("one", 1.0)])


def _direction() -> bytes:
    """gm, held, S, Y, a, b, gamma -> d = -(gamma gm + S a + Y b) with held pixels 0, g.d, max |d|."""
    n = helper.make_node
    nodes = [n("Flatten", ["S"], ["Sf"], axis=1), n("Flatten", ["Y"], ["Yf"], axis=1),
             n("MatMul", ["a", "Sf"], ["Sa"]), n("MatMul", ["b", "Yf"], ["Yb"]), n("Add", ["Sa", "Yb"], ["corr"]),
             n("Shape", ["gm"], ["shape"]), n("Reshape", ["corr", "shape"], ["corr4"]),
             n("Mul", ["gm", "gamma"], ["scaled"]), n("Add", ["scaled", "corr4"], ["Hg"]), n("Neg", ["Hg"], ["minus"]),
             n("Where", ["held", "zero", "minus"], ["d"]), n("Mul", ["gm", "d"], ["gd"]),
             n("ReduceSum", ["gd"], ["slope"], keepdims=0), n("Abs", ["d"], ["absd"]),
             n("ReduceMax", ["absd"], ["dmax"], keepdims=0)]
    return _model(nodes, [_value("gm", IMAGE), _value("held", IMAGE, TensorProto.BOOL), _value("S", HISTORY),
                          _value("Y", HISTORY), _value("a", [1, "m"]), _value("b", [1, "m"]), _value("gamma", [])],
                  [_value("d", IMAGE), _value("slope", []), _value("dmax", [])], [_scalar("zero", 0.0)])


def _trial() -> bytes:
    """x, d, g, alpha -> the projected trial point, the step taken, g.step."""
    n = helper.make_node
    nodes = [n("Mul", ["d", "alpha"], ["move"]), n("Add", ["x", "move"], ["moved"]),
             n("Clip", ["moved", "zero", "one"], ["trial"]), n("Sub", ["trial", "x"], ["step"]),
             n("Mul", ["g", "step"], ["gs"]), n("ReduceSum", ["gs"], ["decrease"], keepdims=0)]
    return _model(nodes, [_value("x", IMAGE), _value("d", IMAGE), _value("g", IMAGE), _value("alpha", [])],
                  [_value("trial", IMAGE), _value("step", IMAGE), _value("decrease", [])],
                  [_scalar("zero", 0.0), _scalar("one", 1.0)])


def _curvature() -> bytes:
    """step, g, g_new -> y = g_new - g, s.y, y.y, and a copy of g_new to keep (a CUDA-graph step
    overwrites its gradient's buffer at the next evaluation)."""
    n = helper.make_node
    nodes = [n("Sub", ["g_new", "g"], ["y"]), n("Mul", ["step", "y"], ["sy_"]), n("Mul", ["y", "y"], ["yy_"]),
             n("ReduceSum", ["sy_"], ["sy"], keepdims=0), n("ReduceSum", ["yy_"], ["yy"], keepdims=0),
             n("Identity", ["g_new"], ["g_kept"])]
    return _model(nodes, [_value("step", IMAGE), _value("g", IMAGE), _value("g_new", IMAGE)],
                  [_value("y", IMAGE), _value("sy", []), _value("yy", []), _value("g_kept", IMAGE)])


def _copy() -> bytes:
    n = helper.make_node
    return _model([n("Identity", ["x"], ["y"])], [_value("x", IMAGE)], [_value("y", IMAGE)])


def _push() -> bytes:
    """S, Y, s, y -> the histories with the oldest pair dropped and (s, y) appended, S'y, Y'y."""
    n = helper.make_node
    nodes = [n("Slice", ["S", "start", "end", "axis"], ["S_old"]), n("Slice", ["Y", "start", "end", "axis"], ["Y_old"]),
             n("Unsqueeze", ["s", "axis"], ["s1"]), n("Unsqueeze", ["y", "axis"], ["y1"]),
             n("Concat", ["S_old", "s1"], ["S_new"], axis=0), n("Concat", ["Y_old", "y1"], ["Y_new"], axis=0),
             n("Flatten", ["S_new"], ["Sf"], axis=1), n("Flatten", ["Y_new"], ["Yf"], axis=1),
             n("Flatten", ["y"], ["yf"], axis=0),
             n("Gemm", ["Sf", "yf"], ["Sy"], transB=1), n("Gemm", ["Yf", "yf"], ["Yy"], transB=1)]
    index = [helper.make_tensor(name, TensorProto.INT64, [1], [v]) for name, v in
             (("start", 1), ("end", 2 ** 62), ("axis", 0))]
    return _model(nodes, [_value("S", HISTORY), _value("Y", HISTORY), _value("s", IMAGE), _value("y", IMAGE)],
                  [_value("S_new", HISTORY), _value("Y_new", HISTORY), _value("Sy", ["m", 1]), _value("Yy", ["m", 1])],
                  index)


def _products() -> bytes:
    """S, Y -> S'Y and Y'Y (the carried pairs' matrices, once a scale)."""
    n = helper.make_node
    nodes = [n("Flatten", ["S"], ["Sf"], axis=1), n("Flatten", ["Y"], ["Yf"], axis=1),
             n("Gemm", ["Sf", "Yf"], ["SY"], transB=1), n("Gemm", ["Yf", "Yf"], ["YY"], transB=1)]
    return _model(nodes, [_value("S", HISTORY), _value("Y", HISTORY)], [_value("SY", ["m", "m"]), _value("YY", ["m", "m"])])


class _Graphs:
    """The small graphs, each a session on the step's provider."""

    def __init__(self, step):
        self.device = step.device
        self.sessions = {name: step.sibling_session(build()) for name, build in (
            ("products_g", _direction_products), ("direction", _direction), ("trial", _trial),
            ("curvature", _curvature), ("push", _push), ("products", _products), ("copy", _copy))}

    @classmethod
    def of(cls, step) -> "_Graphs":
        """The step's own set, made once (six sessions: ~0.1 s on CUDA) and kept on it."""
        if getattr(step, "_lbfgs_graphs", None) is None:
            step._lbfgs_graphs = cls(step)
        return step._lbfgs_graphs

    def run(self, name: str, inputs: dict, outputs, into: dict | None = None) -> list:
        """The named outputs, each a new device value, in that order; ``into``: outputs written to
        given buffers instead (not returned)."""
        session = self.sessions[name]
        binding = session.io_binding()
        for key, value in inputs.items():
            if not isinstance(value, ort.OrtValue):
                value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value, np.float32), self.device, 0)
            binding.bind_ortvalue_input(key, value)
        for key in outputs:
            binding.bind_output(key, self.device)
        for key, value in (into or {}).items():
            binding.bind_ortvalue_output(key, value)
        session.run_with_iobinding(binding)
        return binding.get_outputs()[:len(outputs)]

    def upload(self, array: np.ndarray) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array, np.float32), self.device, 0)


def _scalar_of(value: ort.OrtValue) -> float:
    return float(value.numpy())


class _History:
    """The last ``m`` curvature pairs: S and Y on the device (zero-padded at the front, oldest
    first) and, on the host, S'Y and Y'Y among them, in float64."""

    def __init__(self, graphs: _Graphs, m: int, shape, pairs):
        self.graphs, self.m, self.shape = graphs, m, shape
        kept = [(s, y) for s, y in pairs or [] if float(np.dot(s.ravel(), y.ravel())) >
                1e-10 * float(np.dot(y.ravel(), y.ravel()))][-m:]
        S = np.zeros((m, *shape), np.float32)
        Y = np.zeros((m, *shape), np.float32)
        for i, (s, y) in enumerate(kept):
            S[m - len(kept) + i], Y[m - len(kept) + i] = s.reshape(shape), y.reshape(shape)
        self.S, self.Y = graphs.upload(S), graphs.upload(Y)
        del S, Y
        SY, YY = graphs.run("products", {"S": self.S, "Y": self.Y}, ["SY", "YY"])
        self.SY, self.YY = SY.numpy().astype(np.float64), YY.numpy().astype(np.float64)
        self.k = len(kept)

    def clear(self) -> None:
        self.k = 0

    def push(self, step: ort.OrtValue, y: ort.OrtValue) -> None:
        self.S, self.Y, Sy, Yy = self.graphs.run("push", {"S": self.S, "Y": self.Y, "s": step, "y": y},
                                                 ["S_new", "Y_new", "Sy", "Yy"])
        Sy, Yy = Sy.numpy().astype(np.float64).ravel(), Yy.numpy().astype(np.float64).ravel()
        self.SY = np.roll(self.SY, -1, axis=(0, 1))
        self.YY = np.roll(self.YY, -1, axis=(0, 1))
        self.SY[:, -1] = Sy          # s_i . y_new: the new column of R (the new row's other entries are not used)
        self.YY[:, -1] = self.YY[-1, :] = Yy
        self.k = min(self.k + 1, self.m)

    def coefficients(self, SG: np.ndarray, YG: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(a, b, gamma) with H g = gamma g + S a + Y b, zero for the empty slots."""
        m, k = self.m, self.k
        a, b = np.zeros((1, m), np.float32), np.zeros((1, m), np.float32)
        if k == 0:
            return a, b, 1.0
        SY, YY = self.SY[m - k:, m - k:], self.YY[m - k:, m - k:]
        gamma = SY[-1, -1] / YY[-1, -1]
        R, D = np.triu(SY), np.diag(np.diag(SY))
        p1, p2 = SG[m - k:].astype(np.float64), gamma * YG[m - k:].astype(np.float64)
        # R^-1 p1 and R^-T p, by triangular solves rather than an inverse
        r_p1 = np.linalg.solve(R, p1)
        middle = (D + gamma * YY) @ r_p1
        a[0, m - k:] = np.linalg.solve(R.T, middle - p2)
        b[0, m - k:] = -gamma * r_p1
        return a, b, float(gamma)

    def pairs(self) -> list:
        """The valid pairs on the host, oldest first (the next scale resizes them)."""
        if self.k == 0:
            return []
        S, Y = self.S.numpy(), self.Y.numpy()
        return [(S[i].copy(), Y[i].copy()) for i in range(self.m - self.k, self.m)]


class _Budget(Exception):
    pass


class _Stop(Exception):
    pass


def lbfgs_on_device(step, x0: np.ndarray, iterations: int, *, history: int = 20, first_step: float = 0.05,
                    pairs=None, callback=None, stop=None, enough=None) -> Result:
    """``engine.optimize.lbfgs`` for a step that can run on its device (``step.on_device``,
    ``step.sibling_session``, ``step.device``): same arguments, same ``Result`` (the image and the
    pairs of ``state`` back on the host). ``callback(i, loss, parts, image, seconds)`` gets
    ``image`` as a zero-argument function that copies the picture to the host when called."""
    shape = tuple(np.shape(x0))
    graphs = _Graphs.of(step)
    hist = _History(graphs, history, shape, pairs)
    if isinstance(pairs, list):   # on the device now: the host's copies go (engine.optimize.lbfgs does the same)
        pairs.clear()
    count, best = 0, None   # best: (loss, parts, OrtValue, evaluation)
    interrupted, done = False, False   # done: ``enough`` said so (engine.schedule.Plateau)
    # a CUDA-graph step reads its image from a buffer of its own: trials are written there too
    staged = getattr(step, "image_buffer", None)

    def evaluate(point: ort.OrtValue):
        nonlocal count, best, done
        if count >= iterations or done:
            raise _Budget
        if stop is not None and stop():
            raise _Stop
        begin = time.perf_counter()
        loss, grad, parts = step.on_device() if staged is not None else step.on_device(point)
        seconds = time.perf_counter() - begin
        count += 1
        if best is None or loss < best[0]:
            best = (loss, parts, point, count)
        if callback:
            callback(count, loss, parts, lambda point=point: point.numpy(), seconds)
        done = enough is not None and enough(loss)
        return loss, grad

    start = np.ascontiguousarray(np.clip(np.asarray(x0, np.float32), 0, 1))
    x = graphs.upload(start)
    if staged is not None:
        staged.update_inplace(start)
    try:
        fx, g = evaluate(x)
        g = graphs.run("copy", {"x": g}, ["y"])[0]
        while True:
            gm, held, SG, YG = graphs.run("products_g", {"x": x, "g": g, "S": hist.S, "Y": hist.Y},
                                          ["gm", "held", "SG", "YG"])
            a, b, gamma = hist.coefficients(SG.numpy().ravel(), YG.numpy().ravel())
            d, slope, dmax = graphs.run("direction", {"gm": gm, "held": held, "S": hist.S, "Y": hist.Y, "a": a,
                                                      "b": b, "gamma": np.float32(gamma)}, ["d", "slope", "dmax"])
            slope = _scalar_of(slope)
            if not slope < 0:  # not a descent direction (stale curvature): start again from the gradient
                hist.clear()
                d, slope, dmax = graphs.run("direction", {"gm": gm, "held": held, "S": hist.S, "Y": hist.Y,
                                                          "a": np.zeros_like(a), "b": np.zeros_like(b),
                                                          "gamma": np.float32(1)}, ["d", "slope", "dmax"])
                slope = _scalar_of(slope)
                if not slope < 0:
                    break   # nothing can move: a stationary point of the box-constrained problem
            alpha = 1.0 if hist.k else first_step / max(_scalar_of(dmax), 1e-30)
            while True:
                trial, moved, decrease = graphs.run("trial", {"x": x, "d": d, "g": g, "alpha": np.float32(alpha)},
                                                    ["trial", "step", "decrease"])
                if staged is not None:   # a copy where the step reads (an Identity beside Clip got no buffer on CUDA)
                    graphs.run("copy", {"x": trial}, [], into={"y": staged})
                f_trial, g_trial = evaluate(trial)
                decrease = _scalar_of(decrease)
                if math.isfinite(f_trial) and f_trial <= fx + 1e-4 * decrease:
                    break
                dropped = f_trial - fx - slope * alpha
                guess = -slope * alpha * alpha / (2 * dropped) if math.isfinite(dropped) and dropped > 0 else 0.5 * alpha
                alpha = min(max(guess, 0.1 * alpha), 0.5 * alpha)
            y, sy, yy, g_trial = graphs.run("curvature", {"step": moved, "g": g, "g_new": g_trial},
                                            ["y", "sy", "yy", "g_kept"])
            if _scalar_of(sy) > 1e-10 * _scalar_of(yy):
                hist.push(moved, y)
            x, fx, g = trial, f_trial, g_trial
    except _Budget:
        pass
    except _Stop:   # a KeyboardInterrupt goes through: an abort, no picture
        interrupted = True
    if best is None:
        return Result(None, float("nan"), {}, count, interrupted, hist.pairs())
    loss, parts, image, _ = best
    return Result(image.numpy(), loss, parts, count, interrupted, hist.pairs())

"""One 3x3 convolution (+ bias, ReLU) at VGG19's 512x341 layer shapes (forward and input-gradient
directions): ONNX Runtime's direct convolution against ``engine.ort.winograd``'s F(4x4, 3x3) and
F(6x6, 3x3), same run, CPU provider. This is what sets where the rewrite applies and with which
tiling (``winograd.block_size``).

    python scripts/winograd_layers.py [--repeats 10]
"""
import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine.ort import winograd  # noqa: E402

# (channels in, channels out, height, width) of VGG19's 3x3 convolutions at 512x341
SHAPES = [(64, 64, 341, 512), (64, 128, 170, 256), (128, 64, 170, 256), (128, 128, 170, 256),
          (128, 256, 85, 128), (256, 128, 85, 128), (256, 256, 85, 128), (256, 512, 42, 64),
          (512, 256, 42, 64), (512, 512, 42, 64), (512, 512, 21, 32)]


def conv_model(cin, cout, h, w, rng):
    kernels = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2 / (9 * cin))).astype(np.float32)
    bias = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "k", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, h, w])],
        [numpy_helper.from_array(kernels, "k"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def timed(model, external, x, repeats):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    values = [ort.OrtValue.ortvalue_from_numpy(a) for a in external.values()]
    if values:
        options.add_external_initializers(list(external), values)
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": x})[0]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {"x": x})
        times.append(time.perf_counter() - start)
    return float(np.median(times)), y


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'layer':<22} {'direct ms':>10} {'F(4x4) ms':>10} {'F(6x6) ms':>10} {'F(4x4)':>7} {'F(6x6)':>7} "
          f"{'error 4':>8} {'error 6':>8}  by default")
    for cin, cout, h, w in SHAPES:
        model = conv_model(cin, cout, h, w, rng)
        x = np.maximum(rng.standard_normal((1, cin, h, w)), 0).astype(np.float32)
        direct, expected = timed(model, {}, x, args.repeats)
        results = []
        for m in (4, 6):   # every shape, whatever this CPU's rule
            rewritten, external, _ = winograd.rewrite(copy.deepcopy(model),
                                                      choose=lambda _cin, _cout, m=m: m)
            fast, got = timed(rewritten, external, x, args.repeats)
            results.append((fast, np.linalg.norm(got - expected) / np.linalg.norm(expected)))
        (t4, e4), (t6, e6) = results
        default = winograd.block_size(cin, cout)
        print(f"{cin:>3}->{cout:<3} at {h:>3}x{w:<3}     {direct * 1e3:10.1f} {t4 * 1e3:10.1f} {t6 * 1e3:10.1f} "
              f"{direct / t4:6.2f}x {direct / t6:6.2f}x {e4:8.1e} {e6:8.1e}  "
              f"{f'F({default}x{default})' if default else 'direct'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

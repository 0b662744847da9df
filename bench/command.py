"""``nst bench``: the options of every benchmark the CLI runs (``bench.main`` picks one)."""
from __future__ import annotations


from engine.options import add_count, add_weights_option


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure feature extraction and stylize speed",
                       description="Feature extraction, TensorFlow vs ONNX Runtime (each available provider and "
                                   "precision), warm-up excluded, median of repeats, with GFLOP/s and this "
                                   "machine's float32 matrix-product rate measured in the same run. --stylize "
                                   "measures the style-transfer step and time to quality instead.")
    p.add_argument("--sizes", help="sizes, px: square inputs for features (default 256,512,1024), the longest side "
                                    "of the bundled content image for --steps (default 256,512)")
    add_count(p, "--repeats", default=5)
    p.add_argument("--provider", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--precisions", default="fp32,fp16,int8")
    p.add_argument("--no-tf", action="store_true", help="skip TensorFlow (machines without it)")
    p.add_argument("--model-dir", help="folder holding exported vgg19-*.onnx files (machines without TensorFlow)")
    p.add_argument("--stylize", action="store_true", help="benchmark the style-transfer loop instead")
    p.add_argument("--steps", action="store_true",
                   help="benchmark one loss-and-gradient step of each engine instead (TensorFlow, XLA, ONNX Runtime "
                        "CPU, and CUDA fp32 / TF32 / TF32+NHWC where there is a GPU)")
    p.add_argument("--held", action="store_true",
                   help="time a held engine's runs instead: from the call to the first evaluation, first run and "
                        "later runs at sizes already seen (--sizes, --step-engines)")
    p.add_argument("--iterations", type=int, default=300, help="--stylize: the seed loop's iterations")
    add_count(p, "--fast-iterations", metavar="N",
              help="--stylize: the stylize loop's evaluations at each of its scales (default: the stylize defaults' "
                   "schedule)")
    p.add_argument("--fresh-seed", action="store_true",
                   help="--stylize: run the seed's loop again even where a run of it on this CPU kind, with these "
                        "iterations and images, is cached (~/.cache/nst/bench; it is labelled with its date)")
    p.add_argument("--step-engines", metavar="auto,tf",
                   help="--stylize: which step engines to run: auto (the default engine: on a CPU the ONNX step), "
                        "tf, ort, tf-bf16 (default: auto,tf)")
    p.add_argument("--fixed-size", action="store_true",
                   help="--steps: also time a step graph exported for the one size (as earlier versions cached "
                        "them) against the graph of any size")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    add_weights_option(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from . import main
    return main(args)

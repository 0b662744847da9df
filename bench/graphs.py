"""Two or more exported step graphs, or one graph under the CPU kinds' Winograd rules, timed against
each other, interleaved in one process on the bundled images (each graph fed the inputs it has: an
older graph, or one for pictures without masks, lacks the mask inputs).

    python -m bench.graphs OLD.onnx NEW.onnx [--repeats 10] [--size 512]
    python -m bench.graphs GRAPH.onnx --rules avx2,avx512 [--size 256]

``--rules``: ``engine.ort.winograd.block_size`` as on an AVX2 or an AVX-512 CPU (whatever this one
is), ``f4`` (F(4x4) wherever both sides have 128 channels or more), ``f6`` (F(6x6) there),
``direct`` (no rewrite); default: this CPU's rule.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .machine import cpu, describe_cpu

RULES = ("cpu", "avx2", "avx512", "f4", "f6", "direct")   # --rules (the module docstring says what each is)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("graphs", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--size", type=int, default=512, help="the longest side, px")
    parser.add_argument("--rules", default="cpu", help="Winograd rules, comma-separated (see above)")
    args = parser.parse_args()
    chosen = args.rules.split(",")
    unknown = set(chosen) - set(RULES)
    if unknown:
        raise SystemExit(f"--rules: unknown {', '.join(sorted(unknown))}; expected {', '.join(RULES)}")
    from engine.ort.backend import OrtFeatures, make_session
    from engine.spec import SEED_CONTENT_LAYER, SEED_STYLE_LAYERS, FeatureSpec, StepSpec, step_feeds
    from engine.store import ArtifactStore
    from engine.ort.winograd import block_size, rewrite
    from models.weights import load_weights

    from .steps import step_inputs
    print(describe_cpu(cpu()), time.strftime("%Y-%m-%d"), flush=True)
    # the inputs of a graph with masks (one region of ones): a superset of every version's
    spec = StepSpec(FeatureSpec(load_weights().sha256), SEED_STYLE_LAYERS, (SEED_CONTENT_LAYER,), masked=True)
    content, bound = step_inputs(args.size, spec.features, OrtFeatures(ArtifactStore().feature_model(spec.features),
                                                                 provider="cpu"))
    feeds = {**step_feeds(spec, bound), "image": content[None].astype(np.float32)}

    rules = {"cpu": None, "avx2": lambda cin, cout: block_size(cin, cout, wide_vectors=False),  # RULES but direct
             "avx512": lambda cin, cout: block_size(cin, cout, wide_vectors=True),
             "f4": lambda cin, cout: 4 if min(cin, cout) >= 128 else None,
             "f6": lambda cin, cout: 6 if min(cin, cout) >= 128 else None}

    def cpu_rewrite(rule):
        def apply(model):
            model, external, _ = rewrite(model, choose=rules[rule])
            return model, external
        return apply

    sessions = []
    for path in args.graphs:
        for rule in chosen:
            session, _ = make_session(path, "cpu", memory_pattern=False,
                                      cpu_rewrite=None if rule == "direct" else cpu_rewrite(rule))
            names = {i.name for i in session.get_inputs()}
            name = path.name if len(chosen) == 1 else f"{path.name} [{rule}]"
            sessions.append((name, session, {k: v for k, v in feeds.items() if k in names}))
    times = {name: [] for name, _, _ in sessions}
    cpu_times = {name: [] for name, _, _ in sessions}   # the process's CPU seconds: less moved by others' load
    for _ in range(args.repeats + 1):   # the first round warms up
        for name, session, inputs in sessions:
            start, cpu_start = time.perf_counter(), time.process_time()
            session.run(["loss", "grad"], inputs)
            times[name].append(time.perf_counter() - start)
            cpu_times[name].append(time.process_time() - cpu_start)
    first = float(np.median(times[sessions[0][0]][1:]))
    first_cpu = float(np.median(cpu_times[sessions[0][0]][1:]))
    for name, values in times.items():
        median, cpu_median = float(np.median(values[1:])), float(np.median(cpu_times[name][1:]))
        print(f"{name}: median {median:.3f} s at {content.shape[1]}x{content.shape[0]} ({median / first:.2f}x the "
              f"first); CPU {cpu_median:.3f} s ({cpu_median / first_cpu:.2f}x)")


if __name__ == "__main__":
    main()

"""Two or more exported step graphs timed against each other, interleaved in one process at 512 px
on the bundled images (each graph fed the inputs it has: an older graph, or one for pictures
without masks, lacks the mask inputs).

    python -m bench.graphs OLD.onnx NEW.onnx [--repeats 10]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .machine import cpu, describe_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("graphs", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    from engine.ort.backend import OrtFeatures, make_session
    from engine.spec import SEED_CONTENT_LAYER, SEED_STYLE_LAYERS, FeatureSpec, StepSpec, step_feeds
    from engine.store import ArtifactStore
    from engine.ort.winograd import rewrite
    from models.weights import load_weights

    from .steps import step_inputs
    print(describe_cpu(cpu()), time.strftime("%Y-%m-%d"), flush=True)
    # the inputs of a graph with masks (one region of ones): a superset of every version's
    spec = StepSpec(FeatureSpec(load_weights().sha256), SEED_STYLE_LAYERS, (SEED_CONTENT_LAYER,), masked=True)
    content, bound = step_inputs(512, spec.features, OrtFeatures(ArtifactStore().feature_model(spec.features),
                                                                 provider="cpu"))
    feeds = {**step_feeds(spec, bound), "image": content[None].astype(np.float32)}

    def cpu_rewrite(model):
        model, external, _ = rewrite(model)
        return model, external

    sessions = []
    for path in args.graphs:
        session, _ = make_session(path, "cpu", memory_pattern=False, cpu_rewrite=cpu_rewrite)
        names = {i.name for i in session.get_inputs()}
        sessions.append((path.name, session, {k: v for k, v in feeds.items() if k in names}))
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

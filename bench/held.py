"""A held engine (``Stylizer``) serving several runs: how long each run takes to start its first
evaluation. The first run loads sessions and (TensorFlow) compiles; a later one at a size already
seen computes only its content targets (the style's Grams are remembered)."""
from __future__ import annotations

import time

from .machine import cpu, describe_cpu


def held_bench(args) -> dict:
    from engine.images import DEFAULT_CONTENT, DEFAULT_STYLE, examples_dir, load_image
    from engine.settings import Settings
    from engine.stylizer import Stylizer
    from models.weights import load_weights
    machine = cpu()
    print(describe_cpu(machine), flush=True)
    content, style = (load_image(examples_dir() / p) for p in (DEFAULT_CONTENT, DEFAULT_STYLE))
    sizes = [int(s) for s in (args.sizes or "512").split(",")]
    rows = []
    for engine in [e for e in (args.step_engines or "tf,ort").split(",") if e]:
        start = time.perf_counter()
        stylizer = Stylizer(load_weights(args.weights), provider="cpu")
        made = time.perf_counter() - start
        for run, size in enumerate(sizes + sizes):
            settings = Settings(size=size, scales=1, iterations=1, step_engine=engine)
            first = []
            stylizer.run(content, [style], settings, callback=first.append)
            row = {"step_engine": engine, "run": run + 1, "size": size, "seen": run >= len(sizes),
                   "to_first_evaluation": first[0].elapsed - first[0].evaluation_seconds,
                   "evaluation": first[0].evaluation_seconds, "engine_made": made if run == 0 else 0.0}
            rows.append(row)
            print(f"{engine}: run {run + 1} at {size} px ({'size seen before' if row['seen'] else 'new size'}): "
                  f"first evaluation starts {row['to_first_evaluation']:.2f} s after the call and takes "
                  f"{row['evaluation']:.2f} s" + (f" (making the engine, weights included: {made:.2f} s before)"
                                                  if run == 0 else ""), flush=True)
    return {"kind": "held", "cpu": machine, "date": time.strftime("%Y-%m-%d"), "rows": rows}

"""How the coarse-to-fine schedule changes the time to the seed's quality: each schedule stylizes
the seed's 512 px images on the seed's objective with the ONNX step, and reports when the last
scale first reaches ``--target`` (the seed's cost after 300 iterations; ``bench --stylize``
measures it: 2.204e6 for the bundled pair).

    python -m bench.schedule [--target 2.204e6] [--step-engine ort] "256:60,362:60,512:60" "128:60,181:60,256:60,362:60,512:60"

Evaluation counts do not depend on the machine; the seconds do (the estimate is each scale's
median evaluation time times its evaluations, so that a busy machine moves it less than the wall
time)."""
from __future__ import annotations

import argparse
import time

import numpy as np

from .machine import SEED_LOSS_WEIGHTS, cpu, describe_cpu


def run_schedule(stylizer, content, style, schedule, target: float, step_engine: str) -> dict:
    from engine.settings import Settings
    sizes, counts = zip(*schedule)
    content_weight, style_weight, tv_weight = SEED_LOSS_WEIGHTS
    settings = Settings(size=sizes[-1], min_size=sizes[0], scales=len(sizes), scale_iterations=counts,
                        step_engine=step_engine, content_weight=content_weight, style_weight=style_weight,
                        tv_weight=tv_weight)
    if [s for s, _ in settings.schedule()] != list(sizes):
        raise SystemExit(f"sizes {sizes} are not geometric from {sizes[0]} to {sizes[-1]}")
    events = []
    stylizer.run(content, [style], settings, callback=lambda p: events.append(
        (p.scale, p.iteration, p.loss, p.elapsed, p.evaluation_seconds)))
    last = len(sizes) - 1
    per_eval = [float(np.median([e[4] for e in events if e[0] == k][1:])) for k in range(len(sizes))]
    hit = next((e for e in events if e[0] == last and e[2] <= target), None)
    coarse = sum(1 for e in events if e[0] < last)
    return {"schedule": ",".join(f"{s}:{n}" for s, n in schedule), "coarse_evaluations": coarse,
            "final_evaluations_to_target": hit[1] if hit else None,
            "first_final_loss": next(e[2] for e in events if e[0] == last),
            "estimated_seconds": (sum(per_eval[k] * counts[k] for k in range(last)) + per_eval[last] * hit[1])
            if hit else None, "wall_seconds": hit[3] if hit else None, "per_evaluation": per_eval}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("schedules", nargs="+", help="SIZE:EVALUATIONS,... coarse to fine")
    parser.add_argument("--target", type=float, default=2.204e6)
    parser.add_argument("--step-engine", choices=("tf", "ort"), default="ort")
    args = parser.parse_args()
    from engine.images import DEFAULT_CONTENT, DEFAULT_STYLE, examples_dir, load_image, to_uint8
    from engine.tf.nst import NST
    from engine.stylizer import Stylizer
    print(describe_cpu(cpu()), time.strftime("%Y-%m-%d"), flush=True)
    content, style = (load_image(examples_dir() / p) for p in (DEFAULT_CONTENT, DEFAULT_STYLE))
    content, style = (to_uint8(NST.scale_image(x).numpy()[0]) for x in (content, style))
    stylizer = Stylizer(provider="cpu")
    for text in args.schedules:
        schedule = [tuple(int(v) for v in item.split(":")) for item in text.split(",")]
        r = run_schedule(stylizer, content, style, schedule, args.target, args.step_engine)
        reached = (f"reached after {r['final_evaluations_to_target']} evaluations at the last scale "
                   f"(+{r['coarse_evaluations']} coarse), about {r['estimated_seconds']:.0f} s "
                   f"(wall {r['wall_seconds']:.0f} s)" if r["estimated_seconds"] else "not reached")
        print(f"{r['schedule']}: {reached}; first loss at the last scale {r['first_final_loss']:.3g}; "
              f"s per evaluation {', '.join(f'{t:.3f}' for t in r['per_evaluation'])}", flush=True)


if __name__ == "__main__":
    main()

"""How the schedule, the start of each scale, the style loss and the precision change the time to
the seed's quality: each variant stylizes the seed's 512 px images on the seed's objective and
reports when the last scale first reaches ``--target`` (the seed's cost after 300 iterations;
``bench --stylize`` measures it: 2.204e6 for the bundled pair on the Zen 4 EPYC).

    python -m bench.schedule [--target 2.204e6] [--step-engine ort] "256:60,362:60,512:60" ...
    python -m bench.schedule --scale-stop 0.2 "256:90,362:90,512:60"
    python -m bench.schedule --start content-band "256:60,362:60,512:60"
    python -m bench.schedule --style-loss w2 "256:60,362:60,512:60"

Evaluation counts do not depend on the machine's load; seconds do. The estimate is each scale's
evaluations times a reference time per evaluation at its size, measured in this process before
the runs: the least CPU time of three evaluations divided by the cores (a step keeps every core
busy), which another process's load moves far less than the wall time.

With ``--style-loss w2`` or ``sliced`` the run minimises another loss: each evaluation's picture
at the last scale is then costed on the seed's (Gram) objective by a second step, and the target
is met when that cost is.

``--start`` and ``--rescale-pairs`` are experiments measured for issue 20 (docs/BENCHMARKS.md):
they replace how the stylize loop starts its last scale. ``--reuse-coarse FOLDER`` runs the scales
before the last once and reuses their pictures and curvature pairs, so that such experiments cost
only the last scale's evaluations.
"""
from __future__ import annotations

import argparse
import hashlib
import threading
import time
from pathlib import Path

import numpy as np

from .machine import SEED_LOSS_WEIGHTS, cpu, describe_cpu

STARTS = ("plain", "content-band", "style-noise")


def _band(image: np.ndarray, smaller) -> np.ndarray:
    """The finest band of a float ``(1, h, w, 3)`` picture: itself minus its bicubic trip to ``smaller``."""
    from engine.images import resize_float
    return image - resize_float(resize_float(image, smaller), image.shape[1:3])


def _random_phase(band: np.ndarray, shape, seed: int = 0) -> np.ndarray:
    """A stationary texture with ``band``'s power spectrum and colour correlations (one random phase
    for the three channels, Galerne et al. 2011), cut to ``shape``."""
    rng = np.random.default_rng(seed)
    phase = np.fft.fft2(rng.standard_normal(band.shape[:2]))
    phase /= np.abs(phase) + 1e-12
    out = np.stack([np.real(np.fft.ifft2(np.fft.fft2(band[..., c]) * phase)) for c in range(3)], -1)
    return out[:shape[0], :shape[1]][None].astype(np.float32)


def _experiments(start: str, rescale_pairs: bool, style: np.ndarray):
    """Patch the stylize loop's start of its last scale (the experiments above); returns an undo."""
    import engine.stylizer as stylizer
    from engine.images import as_float, resize_float, resize_longest
    saved = (stylizer.Stylizer._start, stylizer._resized_pairs)

    def started(previous, targets, settings, init_image):
        x = saved[0](previous, targets, settings, init_image)
        if previous is None or start == "plain" or max(targets.shape) != settings.size:
            return x
        shape, content_s = targets.shape, targets.content_image
        smaller = previous.shape[1:3]
        if start == "content-band":   # Kolkin et al. 2019: the content's detail the upsampling lost
            x = x + _band(content_s[None], smaller)
        else:                         # detail with the style's statistics at this scale
            painting = as_float(resize_longest(style, max(shape)))[None]
            ratio = max(smaller) / max(shape)
            small = (max(1, round(painting.shape[1] * ratio)), max(1, round(painting.shape[2] * ratio)))
            x = x + _random_phase(_band(painting, small)[0], shape)
        return np.clip(x, 0, 1).astype(np.float32)

    def pairs(carried, shape):
        resized = saved[1](carried, shape)
        if not resized or not rescale_pairs or max(shape) != rescaled_at[0]:
            return resized
        # the content and style gradients per pixel shrink with the area (their losses are means)
        area = (shape[0] * shape[1]) / float(np.prod(carried[0][0].shape[1:3]))
        return [(s, y / np.float32(area)) for s, y in resized]

    rescaled_at = [None]   # the last scale's longest side, set by each run
    stylizer.Stylizer._start = staticmethod(started)
    stylizer._resized_pairs = pairs

    def undo():
        stylizer.Stylizer._start, stylizer._resized_pairs = staticmethod(saved[0]), saved[1]
    return undo, rescaled_at


class CoarseCache:
    """The coarse scales' results (picture, curvature pairs, evaluations) kept in a folder, so that
    experiments on the last scale alone repeat none of the work before it: the stylize loop's
    L-BFGS replaced, for every scale but the last, by its saved result where there is one."""

    def __init__(self, folder, key: str):
        import engine.stylizer as stylizer
        self.folder, self.key, self.module = Path(folder), key, stylizer
        self.folder.mkdir(parents=True, exist_ok=True)
        self.original, self.index, self.scales, self.counts, self.shapes = stylizer.lbfgs, 0, 0, {}, {}
        stylizer.lbfgs = self

    def begin(self, schedule) -> None:
        self.index, self.scales, self.counts, self.shapes = 0, len(schedule), {}, {}
        self.prefixes = [",".join(f"{s}:{n}" for s, n in schedule[:k + 1]) for k in range(len(schedule))]

    def __call__(self, f, x0, iterations, **options):
        from engine.optimize import Result
        index, self.index = self.index, self.index + 1
        self.shapes[index] = tuple(np.shape(x0)[1:3])
        if index == self.scales - 1:
            return self.original(f, x0, iterations, **options)
        path = self.folder / (hashlib.sha1(f"{self.key}|{self.prefixes[index]}".encode()).hexdigest()[:16] + ".npz")
        if path.exists():
            data = np.load(path)
            pairs = [(data[f"s{i}"], data[f"y{i}"]) for i in range(int(data["pairs"]))]
            result = Result(data["image"], float(data["loss"]), {}, int(data["iterations"]), state=pairs)
        else:
            result = self.original(f, x0, iterations, **options)
            arrays = {f"{k}{i}": a for i, pair in enumerate(result.state or []) for k, a in zip("sy", pair)}
            np.savez(path, image=result.image, loss=result.loss, iterations=result.iterations,
                     pairs=len(result.state or []), **arrays)
        self.counts[index] = result.iterations
        return result

    def close(self) -> None:
        self.module.lbfgs = self.original


def reference_seconds(stylizer, settings, content, style, shapes) -> dict:
    """An evaluation's time at each shape, by the step these settings run: the least CPU time of
    three, over the cores."""
    import os
    from engine.images import as_float, resize_exact, resize_longest
    from engine.targets import Targets, style_grams
    from engine.style_targets import blend_statistics, style_statistics
    plan = stylizer.plan(settings, content.shape)
    step = stylizer.step(plan)
    features = stylizer._feature_backend(settings.targets, plan.feature_spec, plan.feature_model)
    out = {}
    for shape in shapes:
        content_s = as_float(resize_exact(content, shape))
        painting = as_float(resize_longest(style, max(shape)))
        if settings.style_loss == "gram":
            targets = style_grams(features, painting, settings.style_layers)
        else:
            stats = style_statistics(settings.style_loss, features(painting[None]), settings.style_layers, shape=shape)
            targets = blend_statistics(settings.style_loss, [stats], [1.0], settings.style_layers)
        step.bind_targets(Targets(shape, targets, {n: features(content_s[None])[n] for n in settings.content_layers},
                                  settings.style_layers, settings.content_layers, SEED_LOSS_WEIGHTS))
        seconds = []
        for _ in range(3):
            begin = time.process_time()
            step(content_s[None])
            seconds.append(time.process_time() - begin)
        out[shape] = min(seconds) / (stylizer.threads or os.cpu_count() or 1)
    return out


def seed_cost(stylizer, content, style, shape):
    """``f(picture) -> the seed's cost`` at ``shape``: the Gram objective with the seed's weights."""
    settings = _settings([(max(shape), 1)], "ort", "gram", 0.0, "fp32")
    plan = stylizer.plan(settings, content.shape)
    step = stylizer.step(plan)
    from engine.images import as_float, resize_exact, resize_longest
    from engine.targets import Targets, style_grams
    features = stylizer._feature_backend(settings.targets, plan.feature_spec, plan.feature_model)
    content_s = as_float(resize_exact(content, shape))
    bound = Targets(shape, style_grams(features, as_float(resize_longest(style, max(shape))), settings.style_layers),
                    {n: features(content_s[None])[n] for n in settings.content_layers}, settings.style_layers,
                    settings.content_layers, SEED_LOSS_WEIGHTS)

    def cost(picture):
        step.bind_targets(bound)
        return step(picture)[0]
    return cost


def _settings(schedule, step_engine, style_loss, scale_stop, precision):
    from engine.settings import Settings
    sizes, counts = zip(*schedule)
    content_weight, style_weight, tv_weight = SEED_LOSS_WEIGHTS
    return Settings(size=sizes[-1], min_size=sizes[0], scales=len(sizes), scale_iterations=counts,
                    step_engine=step_engine, content_weight=content_weight, style_weight=style_weight,
                    tv_weight=tv_weight, style_loss=style_loss, scale_stop=scale_stop, precision=precision)


def run_schedule(stylizer, content, style, schedule, target: float, step_engine: str, *, style_loss="gram",
                 scale_stop=0.0, precision="fp32", reference=None, judge=None, cache=None,
                 until_target=False) -> dict:
    settings = _settings(schedule, step_engine, style_loss, scale_stop, precision)
    sizes = [s for s, _ in schedule]
    if [s for s, _ in settings.schedule()] != list(sizes):
        raise SystemExit(f"sizes {sizes} are not geometric from {sizes[0]} to {sizes[-1]}")
    events, last = [], len(sizes) - 1

    def keep(p):
        judged = judge(p.image) if judge is not None and p.scale == last else p.loss
        events.append((p.scale, p.iteration, p.loss, p.elapsed, p.evaluation_seconds, p.shape, judged))
    if cache is not None:
        cache.begin(schedule)
    reached = threading.Event()   # with until_target: the run ends at the first evaluation that meets it

    def kept(p):
        keep(p)
        if until_target and p.scale == last and events[-1][6] <= target:
            reached.set()
    outcome = stylizer.run(content, [style], settings, callback=kept, stop=reached)
    counts = [sum(1 for e in events if e[0] == k) or (cache.counts.get(k, 0) if cache else 0) for k in range(len(sizes))]
    shapes = [next((e[5] for e in events if e[0] == k), None) or cache.shapes[k] for k in range(len(sizes))]
    hit = next((e for e in events if e[0] == last and e[6] <= target), None)
    per_eval = [reference[s] for s in shapes] if reference else \
        [float(np.median([e[4] for e in events if e[0] == k][1:])) for k in range(len(sizes))]
    return {"schedule": ",".join(f"{s}:{n}" for s, n in schedule), "evaluations": counts,
            "final_evaluations_to_target": hit[1] if hit else None,
            "first_final_loss": next(e[6] for e in events if e[0] == last),
            "final_cost": min(e[6] for e in events if e[0] == last),
            "estimated_seconds": (sum(per_eval[k] * counts[k] for k in range(last)) + per_eval[last] * hit[1])
            if hit else None, "wall_seconds": hit[3] if hit else None, "per_evaluation": per_eval,
            "picture": outcome.image, "losses": [[e[6] for e in events if e[0] == k] for k in range(len(sizes))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("schedules", nargs="+", help="SIZE:EVALUATIONS,... coarse to fine")
    parser.add_argument("--target", type=float, default=2.204e6)
    parser.add_argument("--step-engine", choices=("tf", "ort"), default="ort")
    parser.add_argument("--style-loss", choices=("gram", "w2", "sliced"), default="gram")
    parser.add_argument("--scale-stop", type=float, default=0.0)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--start", choices=STARTS, default="plain", help="how the last scale starts (experiment)")
    parser.add_argument("--rescale-pairs", action="store_true",
                        help="divide the y of the curvature pairs carried to the last scale by the area ratio (experiment)")
    parser.add_argument("--reuse-coarse", metavar="FOLDER",
                        help="keep the coarse scales' results in FOLDER and reuse them (experiments on the last "
                             "scale; the estimate still counts their evaluations)")
    parser.add_argument("--until-target", action="store_true",
                        help="end each run once it meets the target (its best cost is then the target's)")
    parser.add_argument("--save", metavar="PREFIX", help="write each schedule's picture as PREFIX-N.png")
    parser.add_argument("--trace", metavar="PREFIX", help="write each schedule's losses, scale by scale, as PREFIX-N.json")
    args = parser.parse_args()
    from engine.images import DEFAULT_CONTENT, DEFAULT_STYLE, examples_dir, load_image, save_image, to_uint8
    from engine.tf.nst import NST
    from engine import plan as planning
    from engine.stylizer import Stylizer
    print(describe_cpu(cpu()), time.strftime("%Y-%m-%d"), flush=True)
    content, style = (load_image(examples_dir() / p) for p in (DEFAULT_CONTENT, DEFAULT_STYLE))
    content, style = (to_uint8(NST.scale_image(x).numpy()[0]) for x in (content, style))
    stylizer = Stylizer(provider="cpu")
    undo, rescaled_at = _experiments(args.start, args.rescale_pairs, style)
    cache = CoarseCache(args.reuse_coarse, f"{args.step_engine}|{args.style_loss}|{args.scale_stop}|{args.precision}") \
        if args.reuse_coarse else None
    try:
        for number, text in enumerate(args.schedules):
            schedule = [tuple(int(v) for v in item.split(":")) for item in text.split(",")]
            settings = _settings(schedule, args.step_engine, args.style_loss, args.scale_stop, args.precision)
            shapes = [s for s, _ in planning.schedule(settings, content.shape)]
            rescaled_at[0] = max(shapes[-1])
            reference = reference_seconds(stylizer, settings, content, style, shapes)
            judge = seed_cost(stylizer, content, style, shapes[-1]) if args.style_loss != "gram" else None
            r = run_schedule(stylizer, content, style, schedule, args.target, args.step_engine,
                             style_loss=args.style_loss, scale_stop=args.scale_stop, precision=args.precision,
                             reference={s: reference[s] for s in shapes}, judge=judge, cache=cache,
                             until_target=args.until_target)
            reached = (f"reached after {r['final_evaluations_to_target']} evaluations at the last scale "
                       f"(evaluations per scale {r['evaluations']}), about {r['estimated_seconds']:.0f} s "
                       f"(wall {r['wall_seconds']:.0f} s)" if r["estimated_seconds"] else
                       f"not reached (evaluations per scale {r['evaluations']})")
            print(f"{r['schedule']} [{args.step_engine}, {args.style_loss}, {args.precision}, start {args.start}"
                  f"{', pairs rescaled' if args.rescale_pairs else ''}, scale_stop {args.scale_stop}]: {reached}; "
                  f"seed's cost at the last scale: first {r['first_final_loss']:.3g}, best {r['final_cost']:.4g}; "
                  f"reference s per evaluation {', '.join(f'{t:.3f}' for t in r['per_evaluation'])}", flush=True)
            if args.trace:
                import json
                with open(f"{args.trace}-{number}.json", "w") as f:
                    json.dump({k: v for k, v in r.items() if k != "picture"}, f)
            if args.save:
                save_image(r["picture"], f"{args.save}-{number}.png")
    finally:
        undo()
        if cache is not None:
            cache.close()


if __name__ == "__main__":
    main()

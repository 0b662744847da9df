"""The style-transfer loop against the seed's ``NST.generate_image``: per-step time, the loop's own
cost per evaluation, time to the seed's quality, and peak memory.

Each loop runs in a child process (``python -m bench.loop``) that reports its own peak memory
(``VmHWM``, which starts afresh at ``exec``; ``getrusage``'s maximum does not, and reported the
exporting parent's 5 GB as a TensorFlow-free child's peak)."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .machine import SEED_LOSS_WEIGHTS, cpu, describe_cpu


def seed_run(iterations: int, images: str) -> dict:
    """The seed's NST.generate_image at 512 px: per-step time and the cost it reaches."""
    from engine.memory import peak_rss_mb
    from engine.tf.nst import NST
    data = np.load(images)
    nst = NST(data["style"], data["content"])
    nst.generate_image(iterations=2)  # trace and compile outside the timing
    start = time.perf_counter()
    _, cost = nst.generate_image(iterations=iterations)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "per_step": seconds / iterations, "cost": float(cost), "peak_rss_mb": peak_rss_mb()}


def fast_settings(iterations: int | None, step_engine: str):
    """The stylize loop with the defaults' schedule (or ``iterations`` at each of the defaults' scales)
    on the seed's objective. ``step_engine``: auto | tf | ort, or tf-bf16 (the TensorFlow step in
    bfloat16)."""
    from engine.settings import DEFAULTS
    content_weight, style_weight, tv_weight = SEED_LOSS_WEIGHTS
    engine, _, precision = step_engine.partition("-")
    counts = {"iterations": iterations, "scale_iterations": ()} if iterations else {}
    return DEFAULTS.replace(size=512, step_engine=engine, precision=precision or "fp32",
                            content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight, **counts)


def fast_run(iterations: int, target_cost: float | None, step_engine: str, images: str, output: str) -> dict:
    """The stylize loop on the seed's 512 px images; the time it takes to reach ``target_cost``, and
    at 512 px its time per evaluation against the step engine's own time in the same evaluations
    (the difference is the loop's own cost: optimizer, copies, callbacks)."""
    from engine.memory import peak_rss_mb
    from engine.stylizer import Stylizer
    data = np.load(images)
    events = []   # without their images: keeping 180 pictures would add 200 MB to the peak measured

    def keep(progress):
        events.append(dataclasses.replace(progress, picture=None))

    outcome = Stylizer(provider="cpu", lean=True).run(data["content"], [data["style"]],
                                                      fast_settings(iterations, step_engine), callback=keep)
    peak = peak_rss_mb()
    np.save(output, outcome.image)
    last = max(e.scale for e in events)
    final_scale = [e for e in events if e.scale == last][1:]   # the first includes the scale's set-up
    per_step = float(np.median(np.diff([e.elapsed for e in final_scale])))
    own = float(np.median([e.evaluation_seconds for e in final_scale[1:]]))
    reached = next((e for e in events if e.scale == last and target_cost is not None and e.loss <= target_cost), None)
    return {"step_engine": step_engine, "step": outcome.step, "seconds": outcome.seconds, "per_step": per_step,
            "step_alone": own, "overhead": per_step - own, "overhead_fraction": (per_step - own) / own,
            "first_evaluation_starts": events[0].elapsed - events[0].evaluation_seconds,
            "cost": outcome.loss, "time_to_target": reached.elapsed if reached else None,
            "evaluations_to_target": (sum(1 for e in events if e.scale < last) + reached.iteration) if reached else None,
            "iterations": outcome.iterations, "peak_rss_mb": peak, "tensorflow_imported": "tensorflow" in sys.modules}


def seed_reference_path(machine: dict, iterations: int, content: np.ndarray, style: np.ndarray) -> Path:
    """Where the seed's run is kept for this CPU kind, iteration count and pair of images: it does
    not change from one run of the benchmark to the next (its code is the seed's), and at 512 px it
    takes 7-16 minutes of the benchmark's 10-20."""
    import hashlib
    from models.weights import cache_dir
    key = hashlib.sha256(json.dumps([describe_cpu(machine), iterations]).encode() + content.tobytes()
                         + style.tobytes()).hexdigest()[:16]
    return cache_dir() / "bench" / f"seed-{key}.json"


def _cached_seed(path: Path) -> dict | None:
    try:
        seed = json.loads(path.read_text())
        return seed if {"seconds", "per_step", "cost", "peak_rss_mb", "date"} <= set(seed) else None
    except (OSError, ValueError):
        return None


def _child(*call) -> dict:
    """One loop in a process of its own."""
    root = str(Path(__file__).resolve().parent.parent)
    result = subprocess.run([sys.executable, "-m", "bench.loop", json.dumps(call)], capture_output=True, text=True,
                            cwd=root)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def stylize_bench(args) -> dict:
    """The seed loop against the stylize loop (each step engine), same images, objective and run."""
    from engine.images import DEFAULT_CONTENT, DEFAULT_STYLE, examples_dir, load_image, to_uint8
    from engine.tf.nst import NST
    from engine.spec import FeatureSpec, StepSpec
    from engine.store import ArtifactStore
    from models.keras_vgg19 import tf
    from models.weights import load_weights
    engines = [e for e in (args.step_engines or "auto,tf").split(",") if e]
    machine = cpu()
    print(describe_cpu(machine), flush=True)
    content, style = (load_image(examples_dir() / p) for p in (DEFAULT_CONTENT, DEFAULT_STYLE))
    # the seed's own 512 px images (its bicubic resize), as uint8 for both loops
    content, style = (to_uint8(NST.scale_image(x).numpy()[0]) for x in (content, style))
    evaluations = args.fast_iterations
    weights = load_weights(args.weights)
    schedule = ", ".join(f"{size}:{count}" for size, count in fast_settings(evaluations, "auto").schedule())
    if {"ort", "auto"} & set(engines):  # exported beforehand, so that the timed child never needs TensorFlow
        settings = fast_settings(evaluations, "ort")
        spec = FeatureSpec(weights.sha256, tuple(settings.style_layers) + tuple(settings.content_layers))
        store = ArtifactStore()
        store.feature_model(spec)
        store.step_graph(StepSpec(spec, tuple(settings.style_layers), tuple(settings.content_layers)))
    with tempfile.TemporaryDirectory() as tmp:
        images = str(Path(tmp) / "images.npz")
        np.savez(images, content=content, style=style)
        reference = seed_reference_path(machine, args.iterations, content, style)
        seed = None if args.fresh_seed else _cached_seed(reference)
        if seed is None:
            print(f"seed NST.generate_image, {args.iterations} Adam iterations at 512 px ...", flush=True)
            seed = dict(_child("seed_run", args.iterations, images), cpu=describe_cpu(machine),
                        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
            reference.parent.mkdir(parents=True, exist_ok=True)
            reference.write_text(json.dumps(seed, indent=2))
        else:
            print(f"seed NST.generate_image, {args.iterations} Adam iterations at 512 px: the run of {seed['date']} "
                  f"on this CPU kind ({reference}; --fresh-seed runs it again)", flush=True)
        print(f"  {seed['per_step']:.2f} s/step, cost {seed['cost']:.4g}, {seed['seconds']:.0f} s, "
              f"peak {seed['peak_rss_mb']:.0f} MB", flush=True)
        runs = {}
        for engine in engines:
            output = str(Path(tmp) / f"{engine}.npy")
            fast = _child("fast_run", evaluations, seed["cost"], engine, images, output)
            nst = NST(style, content)
            image = np.load(output).astype(np.float32)[None] / 255.0
            fast["checked_cost"] = float(nst.total_cost(tf.constant(image))[0])
            fast["step_speedup"] = seed["per_step"] / fast["per_step"]
            fast["time_to_seed_cost_fraction"] = (fast["time_to_target"] / seed["seconds"]
                                                  if fast["time_to_target"] else None)
            runs[engine] = fast
            print(f"stylize --step-engine {engine} [{fast['step']}] (L-BFGS, {schedule}): "
                  f"{fast['per_step']:.3f} s/step at 512 px = {fast['step_speedup']:.2f}x the seed's; of it the step "
                  f"{fast['step_alone']:.3f} s and the loop {fast['overhead'] * 1e3:.0f} ms "
                  f"({fast['overhead_fraction']:.1%} of the step); first evaluation started after "
                  f"{fast['first_evaluation_starts']:.1f} s; final cost {fast['checked_cost']:.4g} (seed {seed['cost']:.4g}); "
                  f"peak {fast['peak_rss_mb']:.0f} MB"
                  f"{'' if fast['tensorflow_imported'] else ' (TensorFlow never imported)'}", flush=True)
            print("  seed cost reached " + (
                f"after {fast['evaluations_to_target']} evaluations, {fast['time_to_target']:.0f} s = "
                f"{fast['time_to_seed_cost_fraction']:.1%} of the seed's {seed['seconds']:.0f} s"
                if fast["time_to_target"] else "never"), flush=True)
    return {"kind": "stylize", "cpu": machine, "date": time.strftime("%Y-%m-%d"), "seed_reference": str(reference),
            "seed_iterations": args.iterations, "schedule": schedule, "seed": seed, "stylize": runs}


if __name__ == "__main__":
    name, *arguments = json.loads(sys.argv[1])
    print(json.dumps({"seed_run": seed_run, "fast_run": fast_run}[name](*arguments)))

"""The step of each engine, style loss and precision timed against the default one, interleaved in
one process: the ratios that turn evaluation counts into time on a busy machine.

    python -m bench.variants [--sizes 256,362,512] [--repeats 6] [--variants ort,ort-w2,ort-sliced,tf,tf-noxla,tf-bf16]
    python -m bench.variants --sizes 512 --variants ort,seed    # issue 20's per-step target

``seed`` is the seed's own step as ``NST.generate_image`` runs it (GradientTape, Adam, clip; on its
own 512 px images, whatever ``--sizes`` says): what ``bench --stylize``'s "vs seed" divides by.

Each round runs every variant once, in turn, so that a change in the machine's load touches them
all alike; the medians of the wall time and of this process's CPU time (every thread's: less moved by
other people's work than the wall time) are reported, with each one's ratio to the first variant.
Chelsea in The Starry Night at the seed's weights, each variant's own targets.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from .machine import SEED_LOSS_WEIGHTS, cpu, describe_cpu

VARIANTS = {"ort": dict(step_engine="ort"), "ort-w2": dict(step_engine="ort", style_loss="w2"),
            "ort-sliced": dict(step_engine="ort", style_loss="sliced"), "tf": dict(step_engine="tf"),
            "tf-noxla": dict(step_engine="tf", jit=False), "tf-bf16": dict(step_engine="tf", precision="bf16"),
            "tf-w2": dict(step_engine="tf", style_loss="w2", jit=False),
            "tf-sliced": dict(step_engine="tf", style_loss="sliced", jit=False)}


def _seed_step(content, style):
    """The seed's training step, as ``NST.generate_image`` builds it, and its first picture."""
    from engine.tf.nst import NST
    from models.keras_vgg19 import keras, tf
    nst = NST(NST.scale_image(style).numpy()[0], NST.scale_image(content).numpy()[0])
    image = tf.Variable(nst.content_image)
    optimizer = keras.optimizers.Adam(learning_rate=0.01, beta_1=0.9, beta_2=0.99)

    @tf.function
    def train_step():
        grads, J, *_ = nst.compute_grads(image)
        optimizer.apply_gradients([(grads, image)])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))
        return J

    return (lambda _: float(train_step())), None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="256,362,512")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--variants", default="ort,ort-w2,ort-sliced,tf,tf-noxla,tf-bf16")
    args = parser.parse_args()
    from engine.cpu import has_bf16
    from engine.images import DEFAULT_CONTENT, DEFAULT_STYLE, as_float, examples_dir, load_image, resize_exact
    from engine.settings import DEFAULTS
    from engine.stylizer import Stylizer
    names = [v for v in args.variants.split(",") if v and (v != "tf-bf16" or has_bf16())]
    print(describe_cpu(cpu()), time.strftime("%Y-%m-%d"), flush=True)
    content, style = (load_image(examples_dir() / p) for p in (DEFAULT_CONTENT, DEFAULT_STYLE))
    stylizer = Stylizer(provider="cpu")
    content_weight, style_weight, tv_weight = SEED_LOSS_WEIGHTS
    for size in (int(s) for s in args.sizes.split(",")):
        steps = {}
        if "seed" in names:
            steps["seed"] = _seed_step(content, style)
        for name in (n for n in names if n != "seed"):
            settings = DEFAULTS.replace(size=size, scales=1, iterations=1, content_weight=content_weight,
                                        style_weight=style_weight, tv_weight=tv_weight, **VARIANTS[name])
            captured = {}
            # one real run binds this variant's own targets at this size; its step is then timed alone
            stylizer.run(content, [style], settings, callback=lambda p, c=captured: c.setdefault("p", p))
            plan = stylizer.plan(settings, content.shape)
            steps[name] = (stylizer.step(plan), captured["p"].image.copy())
        picture_shape = next(v[1] for v in steps.values() if v[1] is not None).shape
        wall = {n: [] for n in names}
        work = {n: [] for n in names}
        for name in names:   # each variant's targets were bound by its run; one warm-up call each
            steps[name][0](steps[name][1])
        for _ in range(args.repeats):
            for name in names:
                step, image = steps[name]
                begin, cpu_begin = time.perf_counter(), time.process_time()
                step(image)
                wall[name].append(time.perf_counter() - begin)
                work[name].append(time.process_time() - cpu_begin)
        first = names[0]
        for name in names:
            w, c = float(np.median(wall[name])), float(np.median(work[name]))
            print(f"{picture_shape[2]}x{picture_shape[1]} {name:<11} wall {w:7.3f} s ({w / np.median(wall[first]):.2f}x "
                  f"{first})  CPU {c:7.3f} s ({c / np.median(work[first]):.2f}x)", flush=True)
        del steps


if __name__ == "__main__":
    main()

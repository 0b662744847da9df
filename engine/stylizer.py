"""The engine as an object a program holds: weights, exported models and sessions loaded once and
shared by many runs.

A run is planned before its first evaluation: every scale's size, which step engine runs, and
every exported model it needs, found in the store or exported there (or, where the store may
not export, refused at once with one line). Then the targets of every scale, then the
coarse-to-fine loop, which a ``stop`` callable or event ends from any thread, keeping the best
picture so far. Progress reaches a callback; nothing here prints.

TensorFlow is imported only when a setting needs it: with ``targets="ort"``, the ONNX step and
the models exported, a run never imports it.
"""
from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import plan as planning
from .colors import color_statistics, match_colors, mixed_statistics
from .images import as_float, preserve_colors, resize_exact, resize_field, resize_float, resize_longest, to_uint8
from .masks import check_masks, mask_from_image
from .memory import StoppedWaiting, budget, release_memory
from .optimize import adam, lbfgs
from .schedule import Plateau
from .ort.backend import cuda_unavailable_reason
from .plan import Plan
from .settings import DEFAULTS, Settings, SettingsError
from .spec import FeatureSpec, StepSpec
from .store import ArtifactStore
from .style_targets import blend_statistics, style_statistics
from .targets import Targets, style_grams
from .tiles import TiledStep, tiled_grams

__all__ = ["Stylizer", "stylize", "Progress", "Outcome", "Interrupted", "Plan"]
GRAM_CACHE = 16   # style images' Grams a held engine remembers (a 512 px painting's: 2.6 MB)
# where L-BFGS runs beside the step on its device (engine.ort.device_lbfgs): on a GPU the host
# optimizer cost 3x the step (docs/BENCHMARKS.md); on a CPU the host's numpy is as fast
DEVICE_LOOP = ("cuda",)


class Interrupted(Exception):
    """Stopped before the first evaluation of the first scale: there is no picture to keep."""


@dataclass
class Progress:
    """What a run reports after every evaluation."""
    scale: int                 # 0-based
    scales: int
    shape: tuple               # (h, w) of this scale
    iteration: int             # 1-based, within the scale
    iterations: int
    loss: float
    parts: dict
    elapsed: float             # seconds since the run started, at the end of this evaluation
    evaluation_seconds: float  # what this evaluation took (the step engine's time; the rest is the loop's)
    evaluations: int           # evaluations so far, all scales
    total: int                 # evaluations planned, all scales
    rate: float                # evaluations a second since the first began
    left: float                # seconds to the end, estimated: the evaluations to come weighed by their pixels
    # the picture just evaluated, or a function that copies it from the GPU (only when asked: an
    # evaluation there takes a few ms, the copy ~1 ms)
    picture: object = field(repr=False)
    # the run's own ending for a picture: uint8, with the colour post-processing the result gets
    finish: Callable[[np.ndarray], np.ndarray] = field(repr=False, default=None)

    @property
    def image(self) -> np.ndarray:
        """float32 (1, h, w, 3) in [0, 1], the picture just evaluated."""
        if callable(self.picture):
            self.picture = self.picture()
        return self.picture


@dataclass
class Outcome:
    image: np.ndarray          # uint8 (h, w, 3)
    loss: float                # the best total loss of the last scale that ran
    parts: dict
    iterations: int            # evaluations, all scales
    seconds: float
    interrupted: bool
    targets: str               # which backend computed the targets, in words
    step: str                  # which engine computed the steps, in words
    weights: str               # where the weights came from
    settings: dict
    scale: int = 1             # the scale the picture comes from (1-based): below scales when stopped early,
    scales: int = 1            # the picture then that scale's, upsampled to the size asked
    weights_sha256: str = ""   # the weights' identity: a picture made with other weights is another picture


def _stop_function(stop) -> Callable[[], bool] | None:
    if stop is None:
        return None
    return stop.is_set if hasattr(stop, "is_set") else stop


def _pick(features: dict, layers) -> dict:
    return {n: features[n] for n in layers}


def _check_image(image, what: str) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or 0 in array.shape:
        raise ValueError(f"{what} must be a uint8 RGB array of shape (h, w, 3), not {array.dtype} {array.shape}")
    return array


class _with_penalty:
    """A step plus a pixel-space term: the optimizers see one value-and-gradient function."""

    def __init__(self, step, penalty):
        self.step, self.penalty = step, penalty

    def bind_targets(self, targets: Targets) -> None:
        self.step.bind_targets(targets)

    def describe(self) -> str:
        return self.step.describe()

    def __call__(self, x):
        loss, grad, parts = self.step(x)
        value, gradient = self.penalty(x)
        return loss + float(value), grad + np.asarray(gradient, np.float32).reshape(grad.shape), \
            {**parts, "penalty": float(value)}


class Stylizer:
    """Holds the engine for many runs on one provider.

    ``weights``: a ``VGG19Weights`` (default: ``load_weights()``). ``provider``: ONNX Runtime's,
    auto | cpu | cuda. ``threads``: for ONNX Runtime, TensorFlow (when this process has not
    started it yet) and the BLAS of the optimizer (default: every core).
    ``store``: where exported models are found or made (default: the user cache, exporting
    when needed). ``lean``: drop the feature extractor once a run's targets are computed, so
    that the loop's peak memory is the step's alone (a one-off run); a held engine keeps it.
    ``log`` hears one-line notes (exports, skipped scales). One run at a time per object.
    """

    def __init__(self, weights=None, *, provider: str = "auto", threads: int | None = None,
                 store: ArtifactStore | None = None, lean: bool = False, log: Callable[[str], None] | None = None):
        if provider not in ("auto", "cpu", "cuda"):
            raise SettingsError("provider", f"must be auto, cpu or cuda, not {provider!r}")
        if threads is not None and threads < 1:
            raise SettingsError("threads", f"must be at least 1, not {threads}")
        if weights is None:
            from models.weights import load_weights
            weights = load_weights()
        self.weights, self.provider, self.threads, self.lean = weights, provider, threads, lean
        self.log = log or (lambda *_: None)
        self.store = store or ArtifactStore(log=self.log)
        self._features: dict = {}     # (backend, FeatureSpec) -> OrtFeatures | TfFeatures
        self._steps: dict = {}        # (engine, StepSpec, jit, winograd) -> OrtStep | TfStep
        self._trunks: dict = {}       # (FeatureSpec, precision) -> Keras trunk
        self._grams: OrderedDict = OrderedDict()   # style image and size -> its Grams (least recent first)
        self._running = threading.Lock()
        if threads:
            self._limit_tensorflow_threads()

    # -- planning -------------------------------------------------------------------------

    def plan(self, settings: Settings, content_shape, *, masked: bool = False) -> Plan:
        """Decide the scales and the step engine, and get every exported model the run needs
        (exporting it now if the store may), before any evaluation. ``masked``: the run will
        have style or content masks (they need the step graph that takes them)."""
        spec = FeatureSpec(self.weights.sha256, tuple(settings.style_layers) + tuple(settings.content_layers),
                           settings.pooling)
        schedule = planning.schedule(settings, content_shape, self.log)
        feature_model = self.store.feature_model(spec) if settings.targets == "ort" else None
        if settings.precision == "bf16":
            from .cpu import has_bf16
            if not has_bf16():
                raise SettingsError("precision", "bf16 needs a CPU with bfloat16 instructions (AVX512_BF16 or AMX); "
                                                 "this one has neither, where bfloat16 is slower than fp32")
        if masked and settings.style_loss != "gram":
            raise SettingsError("style_loss", f"{settings.style_loss} works without masks; masks need the gram style loss")
        step_spec = self._step_spec(settings, spec, masked)
        engine = settings.step_engine
        if engine == "auto":
            engine = self._auto_engine(settings, step_spec, feature_model)
        step_graph = self.store.step_graph(step_spec) if engine == "ort" else None
        shapes = tuple(s for s, _ in schedule)
        return Plan(settings, shapes, tuple(n for _, n in schedule), engine, spec, feature_model, step_graph,
                    planning.tiles(settings, engine, shapes, self.log), masked)

    def _auto_engine(self, settings: Settings, step_spec: StepSpec, feature_model) -> str:
        """The ONNX step wherever it can run: on CUDA, and on a CPU too (it is faster than the
        TensorFlow step on every CPU kind measured, and takes about half its memory) when its
        graph is in the store or can be exported here; TensorFlow where it cannot (max pooling,
        bfloat16, or a store without the graph that may not export)."""
        if settings.pooling != "avg" or settings.precision != "fp32":
            return "tf"
        if self._runs_on_cuda(feature_model, step_spec.features) or self.store.has_step_graph(step_spec):
            return "ort"
        if self.store.can_export() or not _importable("tensorflow"):
            return "ort"   # exported once now; or, with no TensorFlow either, the store's one-line reason
        return "tf"

    @staticmethod
    def _step_spec(settings: Settings, spec: FeatureSpec, masked: bool = False) -> StepSpec:
        return StepSpec(spec, tuple(settings.style_layers), tuple(settings.content_layers), masked=masked,
                        style_loss=settings.style_loss)

    def _runs_on_cuda(self, feature_model, spec) -> bool:
        """Whether ONNX Runtime really runs on CUDA here: a session that started on it says so."""
        if self.provider == "cpu" or cuda_unavailable_reason() is not None:
            return False
        if feature_model is not None:
            return self._feature_backend("ort", spec, feature_model).provider == "cuda"
        return True

    # -- what runs ------------------------------------------------------------------------

    def _feature_backend(self, backend: str, spec: FeatureSpec, path: Path | None):
        key = (backend, spec)
        if key not in self._features:
            if backend == "ort":
                from .ort.backend import OrtFeatures
                self._features[key] = OrtFeatures(path, spec=spec, provider=self.provider, threads=self.threads,
                                                  lean=self.lean)
            else:
                from .tf.backend import TfFeatures
                self._features[key] = TfFeatures(spec, self.weights)
        return self._features[key]

    def step(self, plan: Plan):
        """The value-and-gradient function (``OrtStep`` or ``TfStep``) that runs ``plan``: held, shared by runs."""
        s = plan.settings
        key = (plan.step_engine, self._step_spec(s, plan.feature_spec, plan.masked), s.jit, s.winograd, s.precision)
        if key not in self._steps:
            if plan.step_engine == "ort":
                from .ort.step import OrtStep
                self._steps[key] = OrtStep(plan.step_graph, spec=key[1], provider=self.provider,
                                           threads=self.threads, winograd=s.winograd)
                release_memory()  # what loading and rewriting the graph took and freed
            else:
                from .tf.objective import TfStep
                trunk = (plan.feature_spec, s.precision)
                if trunk not in self._trunks:
                    from models.keras_vgg19 import build_trunk
                    self._trunks[trunk] = build_trunk(self.weights, plan.feature_spec.layers, s.pooling,
                                                      dtype="float32" if s.precision == "fp32" else "mixed_bfloat16")
                # XLA's CPU code has no bfloat16 kernels of its own: oneDNN's are what make bf16 fast
                self._steps[key] = TfStep(self._trunks[trunk], style_layers=s.style_layers,
                                          content_layers=s.content_layers, jit=s.jit and s.precision == "fp32",
                                          style_loss=s.style_loss)
        return self._steps[key]

    def _limit_tensorflow_threads(self) -> None:
        import sys
        if "tensorflow" not in sys.modules:  # set when (if) it is first imported
            import os
            os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(self.threads))
            os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

    def close(self) -> None:
        """Drop every session and compiled step (the weights stay)."""
        self._features.clear()
        self._steps.clear()
        self._trunks.clear()
        self._grams.clear()
        release_memory()

    # -- a run ----------------------------------------------------------------------------

    def run(self, content, styles, settings: Settings = DEFAULTS, *, init_image=None,
            callback: Callable[[Progress], None] | None = None, stop=None, plan: Plan | None = None,
            penalty: Callable | None = None, masks=None, content_mask=None,
            on_wait: Callable[[float], None] | None = None) -> Outcome:
        """Stylize uint8 RGB ``content`` with uint8 RGB ``styles`` (a list). ``init_image``: the
        start picture when ``settings.init == "image"``. ``stop``: a callable or an event; once
        true, the run ends after the evaluation in progress and returns the best picture so far
        (``Interrupted`` when no evaluation has finished yet). ``penalty``: an extra pixel-space
        term, ``penalty(x) -> (value, gradient)`` for the float32 ``(1, h, w, 3)`` image of any
        scale, added to the step's loss and gradient by either step engine (reported as the part
        ``"penalty"``); a video's temporal loss is one. ``masks``: one uint8 greyscale picture per
        style, each style applying where its mask is white (resized to the content's shape);
        ``content_mask``: where the content must be kept (white) or may go (black). The run first
        reserves its plan's peak memory from the process's budget (``engine.memory.budget``), which
        every engine of the process shares, waiting for other runs to end if it must (``on_wait(mb)``
        is called then; a stop while waiting is ``Interrupted``)."""
        with self._running, self._blas_threads():
            return self._run(content, styles, settings, init_image, callback, _stop_function(stop), plan, penalty,
                             masks, content_mask, on_wait)

    def _blas_threads(self):
        if not self.threads:
            return contextlib.nullcontext()
        from .threads import blas_threads
        return blas_threads(self.threads)

    def _run(self, content, styles, settings, init_image, callback, stop, plan, penalty, masks,
             content_mask, on_wait) -> Outcome:
        inputs = _Inputs.checked(content, styles, settings, init_image, masks, content_mask)
        masked = bool(inputs.masks) or inputs.content_mask is not None
        plan = plan or self.plan(settings, inputs.content.shape, masked=masked)
        if plan.settings != settings:
            raise ValueError("the plan was made for other settings")
        if masked and not plan.masked:   # masks need the step that takes them: got now, before any evaluation
            plan = self.plan(settings, inputs.content.shape, masked=True)
        try:
            with budget().reserve(plan.memory_mb, stop, on_wait):
                return self._reserved(inputs, settings, callback, stop, plan, penalty)
        except StoppedWaiting as exc:
            raise Interrupted(f"{exc}: no picture yet") from None

    def _reserved(self, inputs: "_Inputs", settings, callback, stop, plan: Plan, penalty) -> Outcome:
        start = time.perf_counter()
        features = self._feature_backend(settings.targets, plan.feature_spec, plan.feature_model)
        targets_by = features.describe()
        # every scale's targets first: the feature extractor is not needed while the loop runs
        scales = [self._targets(features, plan, inputs, index) for index in range(len(plan.shapes))]
        if not any(plan.tiles):
            del features
            features = None
            if self.lean:
                self._features.clear()
                release_memory()
        best, evaluations, steps_by, scale = self._optimize(self.step(plan), features, plan, scales, inputs,
                                                            penalty, callback, stop, start)
        return Outcome(inputs.finish(best.image), best.loss, best.parts, evaluations, time.perf_counter() - start,
                       best.interrupted, targets_by, steps_by, self.weights.source, settings.to_dict(),
                       scale + 1, len(plan.shapes), self.weights.sha256)

    def _targets(self, features, plan: Plan, inputs: "_Inputs", index: int) -> Targets:
        """One scale's targets: the content's features (a tiled scale's come tile by tile, in the
        loop) and the styles' Grams, blended, or one region each where masks place them."""
        settings, shape = plan.settings, plan.shapes[index]
        tile = plan.tiles[index] if plan.tiles else 0
        content = as_float(resize_exact(inputs.content, shape))
        grams = [self._style_grams(features, settings, plan, style, settings.style_size(max(shape)), tile, shape,
                                   index) for style in inputs.styles]
        contents = {} if tile or not settings.content_layers else _pick(features(content[None]),
                                                                         settings.content_layers)
        regions = {}
        if inputs.masks:   # each style its own region, its Grams its own target
            regions = dict(grams={n: np.stack([g[n] for g in grams]) for n in settings.style_layers},
                           style_masks=np.stack([mask_from_image(m, shape) for m in inputs.masks]),
                           region_weights=np.asarray(inputs.blend) * len(inputs.styles))
        kept = None if inputs.content_mask is None else mask_from_image(inputs.content_mask, shape)
        blended = regions.pop("grams", None) or blend_statistics(settings.style_loss, grams, inputs.blend,
                                                                 settings.style_layers)
        return Targets(shape, blended,
                       contents, settings.style_layers, settings.content_layers,
                       (settings.content_weight, settings.style_weight, settings.tv_weight), **regions,
                       content_mask=kept, content_image=content)

    def _optimize(self, whole, features, plan: Plan, scales: list, inputs: "_Inputs", penalty, callback, stop,
                  start: float):
        """The coarse-to-fine loop: each scale starts from the previous one's picture (and its
        optimizer's state, resized). Returns the last scale's best result, the evaluations, what
        computed the last scale's steps, in words, and the index of the scale the picture comes
        from: a stop before the last scale ends gives that scale's best picture brought to the
        size asked."""
        settings = plan.settings
        clock = _Clock(plan, start, inputs.finish)
        image, best, evaluations, adam_state, carried, where, came_from = None, None, 0, None, None, "", 0
        saved = 0   # evaluations the coarse scales did not need (scale_stop), given to the last
        for index, targets in enumerate(scales):
            last = index == len(scales) - 1
            # with scale_stop, a coarse scale ends where it stops paying and the last one gets the rest
            allowed = plan.iterations[index] + (saved if last else 0)
            enough = Plateau(settings.scale_stop) if settings.scale_stop and not last else None
            tile = plan.tiles[index] if plan.tiles else 0
            step = TiledStep(whole, features, tile=tile, seed=settings.seed) if tile else whole
            if penalty is not None:
                step = _with_penalty(step, penalty)
            step.bind_targets(targets)
            x0 = self._start(image, targets, settings, inputs.init_image)
            if best is not None:   # what the last scale holds goes once this one has what it needs
                best.state = None
            if settings.optimizer == "lbfgs" and not tile:
                # the previous scale's curvature pairs, resized: 33 -> 28 evaluations at 512 px to the
                # seed's cost (docs/BENCHMARKS.md). The list is handed over (resizing empties the old
                # one, the optimizer empties this one): one history at a time, as the memory model counts
                optimizer, options = lbfgs, {"pairs": _resized_pairs(carried, targets.shape)}
                if penalty is None and getattr(step, "device", None) in DEVICE_LOOP:
                    from .ort.device_lbfgs import lbfgs_on_device
                    optimizer, where = lbfgs_on_device, f", L-BFGS on the {step.device.upper()} beside it"
            else:   # Adam, going on from the previous scale's moments
                optimizer = adam
                options = {"lr": settings.learning_rate, "state": _resized(adam_state, targets.shape)}
            carried = adam_state = None
            result = optimizer(step, x0, allowed, callback=clock.reporter(index, callback, allowed), stop=stop,
                               enough=enough, **options)
            del options
            evaluations += result.iterations
            if not last and not result.interrupted and result.iterations < plan.iterations[index]:
                saved += plan.iterations[index] - result.iterations
                clock.moved(index, len(scales) - 1, plan.iterations[index] - result.iterations)
            if result.image is None:  # stopped before this scale's first evaluation
                if best is None:
                    raise Interrupted("stopped before the first evaluation: no picture yet")
                best.interrupted = True
                break
            image, best, came_from = result.image, result, index
            adam_state = result.state if optimizer is adam else None
            carried = result.state if optimizer is not adam else None
            if result.interrupted:
                break
        if came_from < len(plan.shapes) - 1:   # stopped early: the picture at the size asked
            best.image = resize_float(best.image, plan.shapes[-1])
        best.state = None
        return best, evaluations, step.describe() + where, came_from

    def _style_grams(self, features, settings: Settings, plan: Plan, style: np.ndarray, size: int,
                     tile: int = 0, shape=None, scale: int = 0) -> dict:
        """A style image's Grams at ``size`` (or the statistics of ``settings.style_loss``, which
        for ``sliced`` depend on the picture's ``shape`` and the ``scale``'s directions),
        remembered: a held engine often applies one painting to many photographs (a batch, a
        server's users), and this is half the targets' work."""
        kind = settings.style_loss
        key = (settings.targets, plan.feature_spec, hashlib.sha1(style.tobytes()).hexdigest(), style.shape, size,
               tuple(settings.style_layers), kind) + ((shape, settings.seed, scale) if kind == "sliced" else ())
        if not settings.style_layers:
            return {}
        if key in self._grams:
            self._grams.move_to_end(key)
        else:
            resized = as_float(resize_longest(style, size))
            if kind != "gram":
                self._grams[key] = style_statistics(kind, features(resized[None]), settings.style_layers, shape=shape,
                                                    seed=settings.seed * 1000 + scale)
            elif tile and max(resized.shape[:2]) > tile:
                self._grams[key] = tiled_grams(features, resized, settings.style_layers, tile)
            else:
                self._grams[key] = style_grams(features, resized, settings.style_layers)
            while len(self._grams) > GRAM_CACHE:
                self._grams.popitem(last=False)
        return self._grams[key]

    @staticmethod
    def _start(previous, targets: Targets, settings: Settings, init_image) -> np.ndarray:
        if previous is not None:
            return resize_float(previous, targets.shape)
        noise = np.random.default_rng(settings.seed).random((1, *targets.shape, 3), dtype=np.float32)
        if settings.init == "noise":
            return noise
        start = targets.content_image[None] if settings.init == "content" else \
            as_float(resize_exact(init_image, targets.shape))[None]
        return start if not settings.init_noise else (1 - settings.init_noise) * start + settings.init_noise * noise


@dataclass
class _Inputs:
    """A run's pictures, checked, with the colour work done before the run, and the ending the
    run's pictures get (``finish``)."""
    settings: Settings
    content: np.ndarray        # uint8, recoloured to the styles' palette where asked
    original: np.ndarray       # the content as given
    styles: list               # uint8, recoloured to the content's palette where asked
    blend: list
    masks: list | None
    content_mask: np.ndarray | None
    init_image: np.ndarray | None

    @classmethod
    def checked(cls, content, styles, settings: Settings, init_image, masks, content_mask) -> "_Inputs":
        content = _check_image(content, "the content image")
        styles = [_check_image(s, f"style image {i + 1}") for i, s in enumerate(styles)]
        settings.check_styles(len(styles))
        if settings.init == "image":
            if init_image is None:
                raise SettingsError("init", "is 'image' but no init image was given")
            init_image = _check_image(init_image, "the init image")
        blend = settings.blend(len(styles))
        if (masks or content_mask is not None) and settings.style_loss != "gram":
            raise SettingsError("style_loss", f"{settings.style_loss} works without masks; masks need the gram "
                                              "style loss")
        masks = check_masks(masks, content_mask, len(styles))
        original = content
        if settings.preserve_colors == "histogram":
            styles = [match_colors(s, *color_statistics(content)) for s in styles]
        elif settings.style_colors:
            content = match_colors(content, *mixed_statistics(styles, blend))
        return cls(settings, content, original, styles, blend, masks, content_mask, init_image)

    def finish(self, image) -> np.ndarray:
        """A float picture of the run as the run gives it: uint8, the content's chroma put back
        when only the luminance was stylized."""
        output = to_uint8(image)
        if self.settings.preserve_colors == "luminance":
            output = preserve_colors(output, resize_exact(self.original, output.shape[:2]))
        return output


class _Clock:
    """A run's evaluations counted and its time left estimated: the evaluations to come weighed by
    their pixels (a later scale's cost more), at the pace the run has kept since its first began."""

    def __init__(self, plan: Plan, start: float, finish):
        self.plan, self.start, self.finish = plan, start, finish
        self.pixels = [h * w for h, w in plan.shapes]
        self.work_total = sum(n * px for n, px in zip(plan.iterations, self.pixels))
        self.count, self.work, self.first = 0, 0, None

    def moved(self, source: int, target: int, evaluations: int) -> None:
        """``evaluations`` of scale ``source`` given to scale ``target`` (``Settings.scale_stop``)."""
        self.work_total += evaluations * (self.pixels[target] - self.pixels[source])

    def reporter(self, index: int, callback, budget: int):
        """The optimizer's callback for scale ``index`` (``budget`` evaluations): a ``Progress`` to
        ``callback`` each evaluation."""
        def report(iteration, loss, parts, x, seconds):
            elapsed = time.perf_counter() - self.start
            self.count += 1
            self.work += self.pixels[index]
            if self.first is None:   # when the first evaluation began: the loop's clock
                self.first = elapsed - seconds
            loop_seconds = max(elapsed - self.first, 1e-9)
            if callback:
                callback(Progress(index, len(self.plan.shapes), self.plan.shapes[index], iteration,
                                  budget, loss, parts, elapsed, seconds, self.count,
                                  self.plan.evaluations, self.count / loop_seconds,
                                  (self.work_total - self.work) * loop_seconds / self.work, x, self.finish))
        return report


def _importable(module: str) -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):   # an import hook that refuses it, a broken installation
        return False


def _resized_pairs(pairs, shape):
    """L-BFGS's curvature pairs brought to the next scale's size, each old pair dropped from
    ``pairs`` as soon as it is resized (the two histories never live whole side by side)."""
    if not pairs:
        return None
    resized = []
    while pairs:
        s, y = pairs.pop(0)
        resized.append((resize_field(s, shape), resize_field(y, shape)))
    return resized


def _resized(state, shape):
    """Adam's moments brought to the next scale's size (the second moment stays non-negative)."""
    if state is None:
        return None
    from .optimize import AdamState
    return AdamState(resize_field(state.m, shape), np.maximum(resize_field(state.v, shape), 0), state.t)


def stylize(content, styles, settings: Settings = DEFAULTS, *, weights=None, provider: str = "auto",
            store: ArtifactStore | None = None, init_image=None, callback=None, stop=None, log=None,
            penalty=None, masks=None, content_mask=None) -> Outcome:
    """One run with an engine made for it and dropped after (see ``Stylizer``)."""
    return Stylizer(weights, provider=provider, store=store, lean=True, log=log).run(
        content, styles, settings, init_image=init_image, callback=callback, stop=stop, penalty=penalty,
        masks=masks, content_mask=content_mask)

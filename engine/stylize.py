"""The fast style-transfer loop: coarse-to-fine scales, targets from either backend,
L-BFGS or Adam over a value-and-gradient step from either engine, progress through a callback.

TensorFlow is imported only when a setting needs it: with ``targets="ort"`` and
``step_engine="ort"`` and the graphs already exported, this runs where TensorFlow is absent."""
from __future__ import annotations

import ctypes
import gc
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
from PIL import Image

from models.vgg19 import check_layers
from models.weights import load_weights

from .images import load_image, resize_longest, to_uint8
from .optimize import adam, lbfgs
from .spec import SEED_CONTENT_LAYER, SEED_STYLE_LAYERS, FeatureSpec, StepSpec
from .targets import Targets

MAX_SIZE = 4096


@dataclass
class Settings:
    """Every control of ``stylize``; the defaults are the documented defaults."""
    size: int = 512                 # longest side of the output, px
    iterations: int = 60            # gradient evaluations at each scale
    optimizer: str = "lbfgs"        # lbfgs | adam
    learning_rate: float = 0.02     # Adam only, in pixel units ([0, 1])
    content_weight: float = 1e5    # the seed's NST uses 1e4: style swamps the subject (docs/BENCHMARKS.md)
    style_weight: float = 1.0
    tv_weight: float = 10.0
    style_layers: dict = field(default_factory=lambda: {n: 1 / 5 for n in SEED_STYLE_LAYERS})
    content_layers: dict = field(default_factory=lambda: {SEED_CONTENT_LAYER: 1.0})
    pooling: str = "avg"
    init: str = "content"           # content | noise | a path to an image
    seed: int = 0
    scales: int = 3                 # coarse-to-fine: sizes grow geometrically from min_size to size
    min_size: int = 256
    style_scale: float = 1.0        # style images are resized to style_scale * the current size
    style_blend: tuple = ()         # one weight per style image (normalised); empty: even
    preserve_colors: bool = False   # keep the content's colours: only the luminance is stylized
    targets: str = "ort"            # ort | tf: which backend computes the Gram and content targets
    provider: str = "auto"          # ONNX Runtime's provider (targets, and the step when ort): auto | cpu | cuda
    step_engine: str = "tf"         # tf (GradientTape, the reference) | ort (the exported step graph)
    jit: bool = True                # XLA-compile the TensorFlow gradient step
    winograd: bool = True           # ORT step on the CPU: Winograd F(4x4, 3x3) from block 3 on

    def validate(self, n_styles: int) -> None:
        """Raise ValueError with a one-line message for any setting that cannot work."""
        if not 1 <= self.size <= MAX_SIZE:
            raise ValueError(f"--size must be between 1 and {MAX_SIZE}, not {self.size}")
        if self.iterations < 1:
            raise ValueError(f"--iterations must be at least 1, not {self.iterations}")
        if self.optimizer not in ("lbfgs", "adam"):
            raise ValueError(f"--optimizer must be lbfgs or adam, not {self.optimizer}")
        for name in ("content_weight", "style_weight", "tv_weight", "style_scale", "learning_rate"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be a non-negative number, not {value}")
        if self.style_scale == 0 or self.learning_rate == 0:
            raise ValueError("--style-scale and --learning-rate must be positive")
        for flag, layers in (("--style-layers", self.style_layers), ("--content-layers", self.content_layers)):
            check_layers(layers)
            if any(not np.isfinite(w) or w < 0 for w in layers.values()):
                raise ValueError(f"{flag}: layer weights must be non-negative numbers")
        if not self.style_layers and not self.content_layers:
            raise ValueError("at least one style or content layer is needed")
        if self.style_blend:
            if len(self.style_blend) != n_styles:
                raise ValueError(f"--style-weights gives {len(self.style_blend)} weight(s) "
                                 f"for {n_styles} style image(s)")
            if any(not np.isfinite(w) or w < 0 for w in self.style_blend) or sum(self.style_blend) <= 0:
                raise ValueError("--style-weights must be non-negative with a positive sum")
        if self.scales < 1:
            raise ValueError(f"--scales must be at least 1, not {self.scales}")
        if self.scales > 1 and not 16 <= self.min_size <= self.size:
            raise ValueError(f"--min-size must be between 16 and --size ({self.size}), not {self.min_size}")
        if self.targets not in ("ort", "tf"):
            raise ValueError(f"--targets must be ort or tf, not {self.targets}")
        if self.provider not in ("auto", "cpu", "cuda"):
            raise ValueError(f"--provider must be auto, cpu or cuda, not {self.provider}")
        if self.step_engine not in ("tf", "ort"):
            raise ValueError(f"--step-engine must be tf or ort, not {self.step_engine}")
        if self.step_engine == "ort" and self.pooling != "avg":
            raise ValueError("--step-engine ort supports --pooling avg only")

    def scale_sizes(self) -> list[int]:
        if self.scales == 1:
            return [self.size]
        ratio = self.size / self.min_size
        return [round(self.min_size * ratio ** (i / (self.scales - 1))) for i in range(self.scales)]


@dataclass
class Progress:
    """What the loop reports after every evaluation."""
    scale: int
    scales: int
    shape: tuple
    iteration: int
    iterations: int
    loss: float
    parts: dict
    elapsed: float
    image: np.ndarray = field(repr=False)


@dataclass
class Outcome:
    image: np.ndarray          # uint8 (h, w, 3)
    loss: float                # final scale's best total loss
    parts: dict
    iterations: int            # evaluations, all scales
    seconds: float
    interrupted: bool
    targets: str               # which backend computed the targets, in words
    step: str                  # which engine computed the steps, in words
    weights: str               # where the weights came from
    settings: dict


def _resize_float(image: np.ndarray, shape) -> np.ndarray:
    """Bicubic resize of a float ``(1, h, w, 3)`` image to ``shape`` (h, w), clipped to [0, 1]."""
    channels = [np.asarray(Image.fromarray(image[0, :, :, c], mode="F").resize((shape[1], shape[0]), Image.BICUBIC))
                for c in range(3)]
    return np.clip(np.stack(channels, -1)[None], 0, 1).astype(np.float32)


def preserve_colors(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Luminance of ``stylized`` with the chroma of ``content`` (both uint8 RGB, same shape), in YCbCr."""
    out = Image.fromarray(stylized).convert("YCbCr")
    src = Image.fromarray(content).convert("YCbCr")
    y = out.getchannel("Y")
    _, cb, cr = src.split()
    return np.asarray(Image.merge("YCbCr", (y, cb, cr)).convert("RGB"))


class _Steps:
    """One value-and-gradient function per scale, from the engine the settings ask for."""

    def __init__(self, settings: Settings, weights, spec: FeatureSpec, log):
        self.settings, self.weights, self.spec, self.log = settings, weights, spec, log
        self.trunk, self.description = None, ""

    def __call__(self, shape, grams, content_targets):
        s = self.settings
        if s.step_engine == "ort":
            from .ort_step import OrtStep
            step = OrtStep(step_graph(_step_spec(s, self.spec, shape), self.weights, self.log), provider=s.provider,
                           winograd=s.winograd)
            _release_memory()  # what loading and rewriting the graph took and freed
            step.bind_targets(gram_targets=grams, content_targets=content_targets, style_layers=s.style_layers,
                              content_layers=s.content_layers, content_weight=s.content_weight,
                              style_weight=s.style_weight, tv_weight=s.tv_weight)
        else:
            from models.keras_vgg19 import build_trunk
            from .objective import TfObjective
            if self.trunk is None:
                self.trunk = build_trunk(self.weights, self.spec.layers, s.pooling)
            step = TfObjective(self.trunk, style_layers=s.style_layers, content_layers=s.content_layers,
                               gram_targets=grams, content_targets=content_targets,
                               content_weight=s.content_weight, style_weight=s.style_weight,
                               tv_weight=s.tv_weight, shape=(1, *shape, 3), jit=s.jit)
        self.description = step.describe()
        return step


def step_graph(spec: StepSpec, weights, log):
    """The exported step graph for ``spec``: the cached file, or exported now (TensorFlow)."""
    from exporter.cache import cached_or_exported, step_mismatch, step_path

    def export():
        from exporter.step import export_step
        start = time.perf_counter()
        result = export_step(spec, weights, log=log)
        log(f"exported the {spec.width}x{spec.height} step graph once in {time.perf_counter() - start:.0f} s "
            f"(gradient {result.grad_rel_error:.1e} from TensorFlow's)")
        return result.path

    path = step_path(spec)
    return cached_or_exported(path, step_mismatch(path, spec), f"step graph for {spec.width}x{spec.height}", export)


def _release_memory() -> None:
    """Collect, then hand freed heap back to the system: glibc keeps large freed blocks (ONNX
    Runtime's arenas) in the process, so one scale's peak would add to the next one's."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _as_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0


def _feature_spec(settings: Settings, weights) -> FeatureSpec:
    return FeatureSpec(weights.sha256, tuple(settings.style_layers) + tuple(settings.content_layers), settings.pooling)


def _step_spec(settings: Settings, spec: FeatureSpec, shape) -> StepSpec:
    return StepSpec(spec, tuple(settings.style_layers), tuple(settings.content_layers), *shape)


def prepare(content: np.ndarray, settings: Settings, *, weights=None, log=print) -> list:
    """Export what a run with these settings on this content image needs (the feature extractor
    and, for ``step_engine="ort"``, one step graph per scale), so that it can then run without
    TensorFlow. Returns the paths."""
    settings.validate(1)
    weights = weights or load_weights()
    spec = _feature_spec(settings, weights)
    from .targets import feature_model
    paths = [feature_model(spec, weights, log)] if settings.targets == "ort" else []
    if settings.step_engine == "ort":
        for size in settings.scale_sizes():
            shape = resize_longest(content, size).shape[:2]
            paths.append(step_graph(_step_spec(settings, spec, shape), weights, log))
    return paths


def stylize(content: np.ndarray, styles: list, settings: Settings = Settings(), *,
            weights=None, callback: Callable[[Progress], None] | None = None, log=print) -> Outcome:
    """Stylize a uint8 RGB ``content`` image with uint8 RGB ``styles``; see ``Settings``."""
    settings.validate(len(styles))
    start = time.perf_counter()
    weights = weights or load_weights()
    blend = np.asarray(settings.style_blend or [1.0] * len(styles), np.float64)
    blend = blend / blend.sum()
    spec = _feature_spec(settings, weights)
    targets = Targets(spec, weights, settings.targets, settings.provider, log)
    steps = _Steps(settings, weights, spec, log)
    optimizer = lbfgs if settings.optimizer == "lbfgs" else adam
    options = {} if settings.optimizer == "lbfgs" else {"lr": settings.learning_rate}

    sizes = settings.scale_sizes()
    # Every scale's targets first, then the feature extractor is dropped: it is not needed
    # while the loop runs, and the step's own memory is the peak.
    scales = []
    for size in sizes:
        content_s = _as_float(resize_longest(content, size))
        style_size = max(16, round(size * settings.style_scale))
        styles_s = [_as_float(resize_longest(s, style_size)) for s in styles]
        scales.append((content_s, *targets(content_s, styles_s, blend, settings.style_layers, settings.content_layers)))
    targets_by = targets.describe()
    del targets
    _release_memory()

    image, result, total_iterations = None, None, 0
    for index, (content_s, content_targets, grams) in enumerate(scales):
        shape = content_s.shape[:2]
        if image is not None:
            x0 = _resize_float(image, shape)
        elif settings.init == "content":
            x0 = content_s[None]
        elif settings.init == "noise":
            x0 = np.random.default_rng(settings.seed).random((1, *shape, 3), dtype=np.float32)
        else:
            x0 = _as_float(np.asarray(Image.fromarray(load_image(settings.init)).resize(
                (shape[1], shape[0]), Image.LANCZOS)))[None]
        objective = steps(shape, grams, content_targets)

        def report(i, loss, parts, x, index=index, shape=shape):
            if callback:
                callback(Progress(index, len(sizes), shape, i, settings.iterations, loss, parts,
                                  time.perf_counter() - start, x))

        result = optimizer(objective, x0, settings.iterations, callback=report, **options)
        del objective  # one scale's step (an ONNX Runtime session, a compiled function) at a time
        _release_memory()
        total_iterations += result.iterations
        image = result.image
        if result.interrupted:
            break

    output = to_uint8(image)
    if settings.preserve_colors:
        output = preserve_colors(output, resize_longest(content, max(output.shape[:2])))
    return Outcome(output, result.loss, result.parts, total_iterations, time.perf_counter() - start,
                   result.interrupted, targets_by, steps.description, weights.source, asdict(settings))

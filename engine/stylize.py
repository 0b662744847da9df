"""The fast style-transfer loop: coarse-to-fine scales, targets from either backend,
L-BFGS or Adam over a TensorFlow value-and-gradient step, progress through a callback."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
from PIL import Image

from models.keras_vgg19 import build_trunk, tf
from models.vgg19 import check_layers
from models.weights import load_weights

from .images import load_image, resize_longest, to_uint8
from .objective import TfObjective, gram_numpy
from .optimize import adam, lbfgs
from .spec import SEED_CONTENT_LAYER, SEED_STYLE_LAYERS, FeatureSpec

MAX_SIZE = 4096


@dataclass
class Settings:
    """Every control of ``stylize``; the defaults are the documented defaults."""
    size: int = 512                 # longest side of the output, px
    iterations: int = 60            # gradient evaluations at each scale
    optimizer: str = "lbfgs"        # lbfgs | adam
    learning_rate: float = 0.02     # Adam only, in pixel units ([0, 1])
    content_weight: float = 1e4
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
    provider: str = "auto"          # for targets=ort: auto | cpu | cuda
    jit: bool = True                # XLA-compile the gradient step

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
    weights: str               # where the weights came from
    settings: dict


def _resize_float(image: np.ndarray, shape) -> np.ndarray:
    """Bicubic resize of a float ``(1, h, w, 3)`` image to ``shape`` (h, w), clipped to [0, 1]."""
    resized = tf.image.resize(image, shape, method="bicubic").numpy()
    return np.clip(resized, 0, 1).astype(np.float32)


def preserve_colors(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Luminance of ``stylized`` with the chroma of ``content`` (both uint8 RGB, same shape), in YCbCr."""
    out = Image.fromarray(stylized).convert("YCbCr")
    src = Image.fromarray(content).convert("YCbCr")
    y = out.getchannel("Y")
    _, cb, cr = src.split()
    return np.asarray(Image.merge("YCbCr", (y, cb, cr)).convert("RGB"))


class _Targets:
    """Computes the fixed targets (content features, blended style Grams) with one backend."""

    def __init__(self, settings: Settings, weights, log):
        layers = tuple(settings.style_layers) + tuple(settings.content_layers)
        spec = FeatureSpec(weights.sha256, layers, settings.pooling)
        if settings.targets == "ort":
            from exporter.export import export
            from .ort_backend import OrtFeatures
            result = export(spec, weights, log=log)
            if not result.reused:
                log(f"exported the feature extractor once to {result.path} "
                    f"(parity {result.max_rel_error:.1e} vs TensorFlow)")
            self.backend = OrtFeatures(result.path, spec=spec, provider=settings.provider)
        else:
            from .tf_backend import TfFeatures
            self.backend = TfFeatures(spec, weights)

    def __call__(self, content: np.ndarray, styles: list, blend: np.ndarray, settings: Settings):
        features = self.backend(content[None])
        content_targets = {n: features[n] for n in settings.content_layers}
        grams = {n: 0.0 for n in settings.style_layers}
        for style, share in zip(styles, blend):
            style_features = self.backend(style[None])
            for n in settings.style_layers:
                grams[n] = grams[n] + share * gram_numpy(style_features[n])
        return content_targets, grams


def _as_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0


def stylize(content: np.ndarray, styles: list, settings: Settings = Settings(), *,
            weights=None, callback: Callable[[Progress], None] | None = None, log=print) -> Outcome:
    """Stylize a uint8 RGB ``content`` image with uint8 RGB ``styles``; see ``Settings``."""
    settings.validate(len(styles))
    start = time.perf_counter()
    weights = weights or load_weights()
    blend = np.asarray(settings.style_blend or [1.0] * len(styles), np.float64)
    blend = blend / blend.sum()
    targets = _Targets(settings, weights, log)
    trunk = build_trunk(weights, tuple(settings.style_layers) + tuple(settings.content_layers), settings.pooling)
    optimizer = lbfgs if settings.optimizer == "lbfgs" else adam
    options = {} if settings.optimizer == "lbfgs" else {"lr": settings.learning_rate}

    sizes = settings.scale_sizes()
    image, result, total_iterations = None, None, 0
    for index, size in enumerate(sizes):
        content_s = _as_float(resize_longest(content, size))
        style_size = max(16, round(size * settings.style_scale))
        styles_s = [_as_float(resize_longest(s, style_size)) for s in styles]
        content_targets, grams = targets(content_s, styles_s, blend, settings)
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
        objective = TfObjective(trunk, style_layers=settings.style_layers,
                                content_layers=settings.content_layers, gram_targets=grams,
                                content_targets=content_targets, content_weight=settings.content_weight,
                                style_weight=settings.style_weight, tv_weight=settings.tv_weight,
                                shape=(1, *shape, 3), jit=settings.jit)

        def report(i, loss, parts, x, index=index, shape=shape):
            if callback:
                callback(Progress(index, len(sizes), shape, i, settings.iterations, loss, parts,
                                  time.perf_counter() - start, x))

        result = optimizer(objective, x0, settings.iterations, callback=report, **options)
        total_iterations += result.iterations
        image = result.image
        if result.interrupted:
            break

    output = to_uint8(image)
    if settings.preserve_colors:
        output = preserve_colors(output, resize_longest(content, max(output.shape[:2])))
    return Outcome(output, result.loss, result.parts, total_iterations, time.perf_counter() - start,
                   result.interrupted, targets.backend.describe(), weights.source, asdict(settings))

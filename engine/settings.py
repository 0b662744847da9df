"""Every control of a style transfer, as one immutable value that the CLI, a server and cluster
workers share. An invalid value cannot be made: the constructor raises ``SettingsError`` naming
the field, which each front end words its own way (the CLI as its ``--flag``)."""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from models.vgg19 import check_layers

from .spec import SEED_CONTENT_LAYER, SEED_STYLE_LAYERS

MAX_SIZE = 4096
OPTIMIZERS = ("lbfgs", "adam")
POOLINGS = ("avg", "max")
INITS = ("content", "noise", "image")
TARGET_BACKENDS = ("ort", "tf")
STEP_ENGINES = ("auto", "tf", "ort")
COLOR_MODES = ("none", "luminance", "histogram")
STYLE_LOSSES = ("gram", "w2", "sliced")
PRECISIONS = ("fp32", "bf16")


class SettingsError(ValueError):
    """A setting that cannot work. ``field`` is its name in ``Settings``; ``problem`` the rest of
    the sentence ("must be at least 1, not 0")."""

    def __init__(self, field_name: str, problem: str):
        super().__init__(f"{field_name} {problem}")
        self.field, self.problem = field_name, problem


class LayerWeights(Mapping):
    """An immutable, ordered ``{layer: weight}``: VGG19 layer names, non-negative finite weights."""

    def __init__(self, items=(), *, field_name: str = "layers"):
        pairs = tuple((str(k), float(v)) for k, v in (items.items() if isinstance(items, Mapping) else items))
        try:
            check_layers([k for k, _ in pairs])
        except ValueError as exc:
            raise SettingsError(field_name, f"has an {exc}") from None
        if any(not math.isfinite(v) or v < 0 for _, v in pairs):
            raise SettingsError(field_name, "must have non-negative weights")
        self._pairs = pairs

    @classmethod
    def parse(cls, text: str, *, field_name: str = "layers") -> "LayerWeights":
        """``block1_conv1:0.5,block2_conv1`` -> weights normalised to sum 1 (1 where none is given)."""
        pairs = []
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            name, _, weight = item.partition(":")
            try:
                pairs.append((name.strip(), float(weight) if weight else 1.0))
            except ValueError:
                raise SettingsError(field_name, f"has a weight {weight!r} for {name} that is not a number") from None
        return cls(pairs, field_name=field_name).normalised()

    def normalised(self) -> "LayerWeights":
        total = sum(v for _, v in self._pairs)
        return LayerWeights([(k, v / total) for k, v in self._pairs]) if total > 0 else self

    def __getitem__(self, key):
        for k, v in self._pairs:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self):
        return (k for k, _ in self._pairs)

    def __len__(self):
        return len(self._pairs)

    def __hash__(self):
        return hash(self._pairs)

    def __eq__(self, other):
        return isinstance(other, Mapping) and list(self.items()) == list(other.items())

    def __repr__(self):
        return f"LayerWeights({dict(self._pairs)!r})"

    def __deepcopy__(self, memo):
        return self


def _even(names) -> LayerWeights:
    return LayerWeights([(n, 1 / len(names)) for n in names])


@dataclass(frozen=True)
class Settings:
    """Every control of a run; the defaults are the documented defaults."""
    size: int = 512                 # longest side of the output, px
    iterations: int = 60            # gradient evaluations at each scale (see scale_iterations)
    scale_iterations: tuple = ()    # evaluations at each scale, coarse to fine; empty: iterations at each
    optimizer: str = "lbfgs"        # lbfgs | adam
    learning_rate: float = 0.02     # Adam only, in pixel units ([0, 1])
    content_weight: float = 1e5     # the seed's NST uses 1e4: style swamps the subject (docs/BENCHMARKS.md)
    style_weight: float = 1.0
    tv_weight: float = 10.0
    style_layers: LayerWeights = field(default_factory=lambda: _even(SEED_STYLE_LAYERS))
    content_layers: LayerWeights = field(default_factory=lambda: _even((SEED_CONTENT_LAYER,)))
    pooling: str = "avg"            # avg | max (max: TensorFlow step only)
    init: str = "content"           # content | noise | image (the array given to the run)
    seed: int = 0                   # noise init
    scales: int = 3                 # coarse-to-fine: sizes grow geometrically from min_size to size
    min_size: int = 256             # longest side at the first scale (one scale when size is not larger)
    style_scale: float = 1.0        # style images are resized to style_scale * the current size
    style_blend: tuple = ()         # one weight per style image (normalised); empty: even
    preserve_colors: str = "none"   # keep the content's colours: none | luminance (stylize the luminance
                                    # only) | histogram (style images recoloured to the content's colours)
    style_colors: bool = False      # recolour the content to the style's colours before the run
    targets: str = "ort"            # ort | tf: which backend computes the Gram and content targets
    step_engine: str = "auto"       # auto (ort where it can run, else tf) | tf (GradientTape) | ort (the exported step)
    memory_limit: int = 0           # MB a run may use; above it the last scales run in tiles (0: 3/4 of
                                    # the memory available when the run is planned)
    tile: int = 0                   # px: scales larger than this run in tiles of it (0: only as memory needs)
    jit: bool = True                # XLA-compile the TensorFlow step
    winograd: bool = True           # ORT step on the CPU: Winograd F(4x4, 3x3) from block 3 on
    style_loss: str = "gram"        # gram (Gatys) | w2 (Gaussian Wasserstein-2) | sliced (sliced Wasserstein)
    scale_stop: float = 0.0         # a coarse scale ends once its loss fell less than this fraction over its
                                    # last 10 evaluations; what it saves goes to the last scale (0: fixed counts)
    precision: str = "fp32"         # fp32 | bf16: the TensorFlow step's convolutions in bfloat16 (CPUs with
                                    # AVX512_BF16 or AMX)

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        for name in ("style_layers", "content_layers"):
            value = getattr(self, name)
            if not isinstance(value, LayerWeights):
                if isinstance(value, str):
                    value = LayerWeights.parse(value, field_name=name)
                elif isinstance(value, (Mapping, list, tuple)):
                    value = LayerWeights(value, field_name=name)
                else:
                    raise SettingsError(name, "must map layer names to weights")
                set_(name, value)
        try:
            set_("style_blend", tuple(float(w) for w in self.style_blend))
        except (TypeError, ValueError):
            raise SettingsError("style_blend", "must be a list of numbers") from None
        if not isinstance(self.scale_iterations, (tuple, list)) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in self.scale_iterations):
            raise SettingsError("scale_iterations", f"must be whole numbers of at least 1, not {self.scale_iterations!r}")
        set_("scale_iterations", tuple(self.scale_iterations))
        for name in ("size", "iterations", "scales", "min_size", "seed", "memory_limit", "tile"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SettingsError(name, f"must be a whole number, not {value!r}")
        for name in ("learning_rate", "content_weight", "style_weight", "tv_weight", "style_scale", "scale_stop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SettingsError(name, f"must be a number, not {value!r}")
            set_(name, float(value))
        if isinstance(self.preserve_colors, bool):   # earlier versions' true/false (and their metadata)
            set_("preserve_colors", "luminance" if self.preserve_colors else "none")
        for name in ("style_colors", "jit", "winograd"):
            if not isinstance(getattr(self, name), bool):
                raise SettingsError(name, f"must be true or false, not {getattr(self, name)!r}")
        self._check()

    def _check(self) -> None:
        if not 1 <= self.size <= MAX_SIZE:
            raise SettingsError("size", f"must be between 1 and {MAX_SIZE}, not {self.size}")
        if self.iterations < 1:
            raise SettingsError("iterations", f"must be at least 1, not {self.iterations}")
        for name, allowed in (("optimizer", OPTIMIZERS), ("pooling", POOLINGS), ("init", INITS),
                              ("targets", TARGET_BACKENDS), ("step_engine", STEP_ENGINES),
                              ("preserve_colors", COLOR_MODES), ("style_loss", STYLE_LOSSES),
                              ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise SettingsError(name, f"must be {' or '.join(allowed)}, not {getattr(self, name)!r}")
        for name in ("content_weight", "style_weight", "tv_weight", "scale_stop"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise SettingsError(name, f"must be a non-negative number, not {value}")
        for name in ("learning_rate", "style_scale"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise SettingsError(name, f"must be a positive number, not {value}")
        if not self.style_layers and not self.content_layers:
            raise SettingsError("style_layers", "and content_layers are both empty: at least one layer is needed")
        if any(not math.isfinite(w) or w < 0 for w in self.style_blend) or (
                self.style_blend and sum(self.style_blend) <= 0):
            raise SettingsError("style_blend", "must be non-negative with a positive sum")
        if self.tile and (self.tile < 64 or self.tile % 16):
            raise SettingsError("tile", f"must be 0 (by memory) or a multiple of 16 from 64 px, not {self.tile}")
        if self.memory_limit < 0:
            raise SettingsError("memory_limit", f"must not be negative, not {self.memory_limit}")
        if self.seed < 0:
            raise SettingsError("seed", f"must not be negative, not {self.seed}")
        if self.scales < 1:
            raise SettingsError("scales", f"must be at least 1, not {self.scales}")
        if self.min_size < 16:
            raise SettingsError("min_size", f"must be at least 16, not {self.min_size}")
        if self.scale_iterations and len(self.scale_iterations) != len(self.scale_sizes()):
            raise SettingsError("scale_iterations", f"gives {len(self.scale_iterations)} count(s) for "
                                                    f"{len(self.scale_sizes())} scale(s)")
        if self.style_colors and self.preserve_colors != "none":
            raise SettingsError("style_colors", "and preserve_colors pull the colours opposite ways: choose one")
        if self.step_engine == "ort" and self.pooling != "avg":
            raise SettingsError("step_engine", "ort supports average pooling only (pooling avg)")
        if self.step_engine == "ort" and self.precision != "fp32":
            raise SettingsError("step_engine", "ort computes in float32 only on a CPU (precision bf16 is the "
                                               "TensorFlow step's)")

    def check_styles(self, count: int) -> None:
        """What depends on the number of style images: a blend weight for each."""
        if count < 1:
            raise SettingsError("style_blend", "needs at least one style image")
        if self.style_blend and len(self.style_blend) != count:
            raise SettingsError("style_blend", f"gives {len(self.style_blend)} weight(s) for {count} style image(s)")

    def scale_sizes(self) -> list[int]:
        """The longest side at each scale: geometric from ``min_size`` to ``size``; one scale when
        ``size`` is not above ``min_size``."""
        if self.scales == 1 or self.size <= self.min_size:
            return [self.size]
        ratio = self.size / self.min_size
        return [round(self.min_size * ratio ** (i / (self.scales - 1))) for i in range(self.scales)]

    def schedule(self) -> list[tuple[int, int]]:
        """``(longest side, evaluations)`` of each scale, coarse to fine."""
        sizes = self.scale_sizes()
        counts = self.scale_iterations or (self.iterations,) * len(sizes)
        return list(zip(sizes, counts))

    def blend(self, count: int) -> list[float]:
        weights = self.style_blend or (1.0,) * count
        return [w / sum(weights) for w in weights]

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain JSON-ready values (layers as ``{name: weight}``)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["style_layers"], data["content_layers"] = dict(self.style_layers), dict(self.content_layers)
        data["style_blend"], data["scale_iterations"] = list(self.style_blend), list(self.scale_iterations)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping) -> "Settings":
        """The inverse of ``to_dict``; unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise SettingsError(unknown[0], "is not a setting")
        return cls(**dict(data))


DEFAULTS = Settings()

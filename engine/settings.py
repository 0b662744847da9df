"""Every control of a style transfer, declared once.

Each ``Settings`` field carries a ``Control``: its kind, bounds or choices, help, unit, CLI flag and
place on the studio's page. From these declarations come the CLI's options (``engine.options``),
the studio's API fields, OpenAPI schema and page controls, and the one check every value goes
through, whoever gives it: the CLI's and a form's text (``Settings.from_text``), JSON and library
callers (``Settings(...)``, ``Settings.from_dict``). A ``Settings`` cannot hold a value that cannot
work: the constructor raises ``SettingsError`` naming the field, which each front end words its
own way (the CLI as its ``--flag``). The pictures a run takes besides the photograph and the
paintings (masks, the content mask, a starting picture) are declared here too (``IMAGE_INPUTS``).

Adding a setting is one ``setting(...)`` line here and its use in the engine."""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.vgg19 import ALL_LAYERS, CONV_LAYERS, check_layers

from .spec import SEED_CONTENT_LAYER, SEED_STYLE_LAYERS

MAX_SIZE = 4096          # px, the output's longest side
MAX_ITERATIONS = 10_000  # evaluations a scale: 3 hours of a 512 px scale at 1 s an evaluation
MAX_SCALES = 8
MAX_STYLES = 16          # paintings one run blends or places
MAX_WEIGHT = 1e12        # loss weights: the losses are ~1e8, and the float32 step must stay finite
MAX_MEMORY_MB = 1 << 20  # 1 TB


class SettingsError(ValueError):
    """A setting that cannot work. ``field`` is its name in ``Settings`` (or in ``IMAGE_INPUTS``);
    ``problem`` the rest of the sentence ("must be between 1 and 4096, not 0")."""
    exit_status = 2

    def __init__(self, field_name: str, problem: str):
        super().__init__(f"{field_name} {problem}")
        self.field, self.problem = field_name, problem


def _finite(number) -> bool:
    """Whether a JSON number is a finite float: an integer too large for one (10**400) is not."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _shown(value, limit: int = 40) -> str:
    """A value as an error line quotes it: never a whole megabyte a client sent."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass(frozen=True)
class Control:
    """What every front end needs to offer one setting.

    ``kind``: int | float | choice | bool | ints | floats | layers (the last three lists: comma-
    separated in text). ``low``/``high`` bound a number (or each item of a list) inclusively;
    ``positive`` excludes ``low``; ``multiple`` it must be a multiple of; ``off`` a value outside
    the bounds that means ``off_means`` ("0: by memory"). ``choices`` with ``choice_help`` (one
    line each for the page); ``aliases`` other spellings of a choice, ``(spelling, choice)``.
    ``longest``: most items of a list. ``flag``: the CLI's when not ``--field-name`` (for a bool,
    the flag that turns the default over); ``const``: what the flag alone means; ``file_choice``:
    the choice a CLI value naming a file stands for (``--init photo.jpg``: init image).
    ``advanced``: the page keeps it folded; ``page``: False where the page sets it another way."""
    kind: str
    label: str
    help: str
    group: str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    positive: bool = False
    multiple: int = 1
    off: Any = None
    off_means: str = ""
    choices: tuple = ()
    choice_help: tuple = ()
    aliases: tuple = ()
    longest: int = 0
    flag: str = ""
    const: Any = None
    file_choice: str = ""
    advanced: bool = False
    page: bool = True
    name: str = ""

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def range_words(self) -> str:
        """The allowed numbers in words: "between 1 and 4096", "a non-negative number up to 1e+12"."""
        whole = self.kind in ("int", "ints")
        if not whole:
            lead = ("a positive number" if self.positive else "a non-negative number" if self.low == 0
                    else f"a number from {self.low:g}" if self.low is not None else "a finite number")
            words = f"{lead} up to {self.high:g}" if self.high is not None else lead
        elif self.high is not None:
            words = f"between {self.low} and {self.high}"
        else:
            words = f"at least {self.low}"
        if self.multiple > 1:
            words = f"a multiple of {self.multiple} {words}"
        if self.off is not None:
            words = f"{self.off} ({self.off_means}) or {words}"
        return words

    # -- checks: a value of any origin -> the value a Settings holds, or SettingsError --------

    def check(self, value):
        """A typed value (JSON's, a library caller's) as ``Settings`` holds it."""
        if self.kind in ("int", "float"):
            return self._number(value, self.kind == "int")
        if self.kind in ("ints", "floats"):
            what = "whole numbers" if self.kind == "ints" else "numbers"
            if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
                raise SettingsError(self.name, f"must be a list of {what}, not {_shown(value)}")
            if len(value) > self.longest:
                raise SettingsError(self.name, f"has {len(value)} items; at most {self.longest}")
            return tuple(self._number(v, self.kind == "ints", item=True) for v in value)
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise SettingsError(self.name, f"must be true or false, not {_shown(value)}")
            return value
        if self.kind == "choice":
            for spelling, choice in self.aliases:
                if type(value) is type(spelling) and value == spelling:
                    value = choice
            if not isinstance(value, str) or value not in self.choices:
                raise SettingsError(self.name, f"must be {' or '.join(self.choices)}, not {_shown(value)}")
            return value
        if self.kind == "layers":
            return LayerWeights.of(value, field_name=self.name)
        raise AssertionError(f"unknown kind {self.kind}")

    def _number(self, value, whole: bool, item: bool = False):
        what = "a whole number" if whole else "a number"
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
            raise SettingsError(self.name, f"has {_shown(value)}, which is not {what}" if item
                                else f"must be {what}, not {_shown(value)}")
        if not whole:
            try:
                value = float(value)
            except OverflowError:   # an int too large for a float
                value = math.inf
        if self.off is not None and value == self.off:
            return value
        low_ok = self.low is None or (value > self.low if self.positive else value >= self.low)
        if (not whole and not math.isfinite(value)) or not low_ok or (self.high is not None and value > self.high) or \
                (self.multiple > 1 and value % self.multiple):
            raise SettingsError(self.name, f"has {_shown(value)}: each must be {self.range_words()}" if item
                                else f"must be {self.range_words()}, not {_shown(value)}")
        return value

    def parse(self, text: str):
        """Text (the CLI's, a form's) as ``Settings`` holds it: "0.7,0.3", "true", "block1_conv1:2"."""
        if not isinstance(text, str):
            return self.check(text)
        text = text.strip()
        numbers = {"int": int, "float": float, "ints": int, "floats": float}
        if self.kind in numbers:
            convert = numbers[self.kind]
            try:
                value = ([convert(v) for v in text.split(",") if v.strip()] if self.kind in ("ints", "floats")
                         else convert(text))
            except ValueError:
                what = {"int": "a whole number", "float": "a number", "ints": "a comma-separated list of whole "
                        "numbers", "floats": "a comma-separated list of numbers"}[self.kind]
                raise SettingsError(self.name, f"{_shown(text)} is not {what}") from None
            return self.check(value)
        if self.kind == "bool":
            words = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False,
                     "off": False}
            if text.lower() not in words:
                raise SettingsError(self.name, f"must be true or false, not {_shown(text)}")
            return words[text.lower()]
        if self.kind == "choice":
            for spelling, choice in self.aliases:
                if isinstance(spelling, str) and text.lower() == spelling:
                    return choice
            return self.check(text)
        return self.check(text)   # layers: LayerWeights reads the CLI's form

    def schema(self, default) -> dict:
        """JSON Schema of the value as a form field gives it (lists and layers: text), for OpenAPI."""
        if self.kind in ("int", "float"):
            bounds = {"minimum" if not self.positive else "exclusiveMinimum": self.low, "maximum": self.high,
                      "multipleOf": self.multiple if self.multiple > 1 else None}
            schema = {"type": "integer" if self.kind == "int" else "number",
                      **{k: v for k, v in bounds.items() if v is not None}}
            if self.off is not None:
                schema = {"anyOf": [{"const": self.off}, schema]}
        elif self.kind == "bool":
            schema = {"type": "boolean"}
        elif self.kind == "choice":
            schema = {"type": "string", "enum": list(self.choices)}
        else:
            schema = {"type": "string"}
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else (
            ",".join(f"{k}:{v:g}" for k, v in default.items()) if isinstance(default, Mapping) else default)
        return {**schema, "title": self.label, "description": self.help, "default": shown}


def setting(default, kind: str, label: str, help: str, group: str, **control):
    """One ``Settings`` field with its declaration."""
    return field(default=default, metadata={"control": Control(kind, label, help, group, **control)})


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
    def of(cls, value, *, field_name: str = "layers") -> "LayerWeights":
        """Any form a front end gives, normalised to sum 1 whichever it is: the CLI's text
        ``block1_conv1:0.5,block2_conv1`` (a name alone weighs 1), JSON's ``{layer: weight}``, a
        list of names (even weights) or of ``[name, weight]`` pairs."""
        if isinstance(value, str):
            pairs = []
            for item in (part.strip() for part in value.split(",")):
                if item:
                    name, _, weight = item.partition(":")
                    try:
                        pairs.append((name.strip(), float(weight) if weight.strip() else 1.0))
                    except ValueError:
                        raise SettingsError(field_name, f"has a weight {_shown(weight)} for {_shown(name.strip())} "
                                                        "that is not a number") from None
        elif isinstance(value, Mapping):
            pairs = list(value.items())
        elif isinstance(value, (list, tuple)):
            pairs = [(item, 1.0) if isinstance(item, str) else
                     tuple(item) if isinstance(item, (list, tuple)) and len(item) == 2 else (None, None)
                     for item in value]
        else:
            pairs = [(None, None)]
        names = [name for name, _ in pairs]
        if any(not isinstance(name, str) for name in names):
            raise SettingsError(field_name, f"must map VGG19 layer names to weights, not {_shown(value)}")
        unknown = next((name for name in names if name not in ALL_LAYERS), None)
        if unknown is not None:
            raise SettingsError(field_name, f"has an unknown VGG19 layer {_shown(unknown)}; expected one of: "
                                            f"{', '.join(CONV_LAYERS)}")
        if len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            raise SettingsError(field_name, f"names {twice} twice")
        for name, weight in pairs:
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise SettingsError(field_name, f"has a weight {_shown(weight)} for {name} that is not a number")
            if not _finite(weight) or weight < 0:
                raise SettingsError(field_name, f"has a weight {_shown(weight)} for {name}: weights must be "
                                                "non-negative and finite")
        total = sum(float(w) for _, w in pairs)
        if pairs and total == 0:
            raise SettingsError(field_name, "has weights that are all 0: give one a positive weight, or no layers")
        if not math.isfinite(total):
            raise SettingsError(field_name, "has weights too large to add up")
        return cls(pairs, field_name=field_name).normalised()

    @classmethod
    def parse(cls, text: str, *, field_name: str = "layers") -> "LayerWeights":
        """``block1_conv1:0.5,block2_conv1`` -> weights normalised to sum 1 (1 where none is given)."""
        return cls.of(str(text), field_name=field_name)

    def normalised(self) -> "LayerWeights":
        """Weights summing to 1; weights that already do are kept as they are, so that normalising
        twice (a picture's settings read back) gives the same value."""
        total = sum(v for _, v in self._pairs)
        if total <= 0 or math.isclose(total, 1.0, rel_tol=1e-12):
            return self
        return LayerWeights([(k, v / total) for k, v in self._pairs])

    def text(self) -> str:
        """The CLI's form, which ``parse`` reads back."""
        return ",".join(f"{k}:{v!r}" for k, v in self._pairs)

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


LAYERS_HELP = ("VGG19 layers{}, each with an optional weight (normalised to sum 1): L[:W],... as "
               "block1_conv1:0.5,block2_conv1")


@dataclass(frozen=True)
class Settings:
    """Every control of a run; the defaults are the documented defaults."""
    size: int = setting(512, "int", "Size", "longest side of the output", "picture", unit="px", low=1, high=MAX_SIZE)
    iterations: int = setting(
        55, "int", "Evaluations a scale", "gradient evaluations at each scale (see scale_iterations; a coarse "
        "scale that stops paying ends sooner and gives the rest to the last, see scale_stop)", "picture",
        low=1, high=MAX_ITERATIONS)
    content_weight: float = setting(
        1e5, "float", "Content weight", "weight of the content loss (the seed's NST uses 1e4, which lets the style "
        "swamp the subject)", "picture", low=0, high=MAX_WEIGHT)
    style_weight: float = setting(1.0, "float", "Style weight", "weight of the style loss", "picture", low=0,
                                  high=MAX_WEIGHT)
    tv_weight: float = setting(10.0, "float", "Smoothness", "weight of the total variation loss (smoothness)",
                               "picture", low=0, high=MAX_WEIGHT, advanced=True)
    preserve_colors: str = setting(
        "none", "choice", "Colours", "keep the photograph's colours: luminance (only the luminance is stylized, the "
        "photograph's chroma kept) or histogram (the paintings recoloured to the photograph's colour mean and "
        "covariance before the run)", "colour", choices=("none", "luminance", "histogram"),
        choice_help=("the paintings' colours", "the photograph's colours: luminance only is stylized",
                     "the photograph's colours: the paintings recoloured first"),
        # earlier versions' true/false (their metadata, a form's checkbox)
        aliases=((True, "luminance"), (False, "none"), ("true", "luminance"), ("on", "luminance"),
                 ("1", "luminance"), ("false", "none"), ("off", "none"), ("0", "none")),
        const="luminance")
    style_colors: bool = setting(
        False, "bool", "Paint in the paintings' palette", "the other way round: recolour the photograph to the "
        "paintings' colours before the run", "colour")
    scales: int = setting(3, "int", "Scales", "coarse-to-fine scales; each starts from the previous result",
                          "schedule", low=1, high=MAX_SCALES)
    min_size: int = setting(128, "int", "First scale", "longest side at the first scale (a size not above it runs "
                            "one scale); the sizes grow geometrically to size", "schedule", unit="px", low=16,
                            high=MAX_SIZE, advanced=True)
    scale_iterations: tuple = setting(
        (), "ints", "Evaluations of each scale", "evaluations at each scale, coarse to fine: N1,N2,... one count a "
        "scale (default: iterations at each)", "schedule", low=1, high=MAX_ITERATIONS, longest=MAX_SCALES,
        advanced=True)
    optimizer: str = setting("lbfgs", "choice", "Optimizer", "L-BFGS (few evaluations to a good picture) or Adam",
                             "schedule", choices=("lbfgs", "adam"), advanced=True)
    learning_rate: float = setting(0.02, "float", "Adam's step", "Adam's step size, in pixel values of [0, 1]",
                                   "schedule", low=0, high=1.0, positive=True, advanced=True)
    init: str = setting(
        "content", "choice", "Start from", "the starting picture: the photograph, noise (seed), or an image "
        "(init_image)", "schedule", choices=("content", "noise", "image"),
        choice_help=("the photograph", "noise", "a picture of your own"), file_choice="image", advanced=True)
    seed: int = setting(0, "int", "Seed", "random seed (noise start, tile offsets): same seed, same machine, same "
                        "picture", "schedule", low=0, high=2 ** 32 - 1, advanced=True)
    init_noise: float = setting(0.0, "float", "Noise in the start", "share of noise (seed) mixed into the starting "
                                "picture: each seed then makes its own picture of the photograph (1: noise alone)",
                                "schedule", low=0, high=1.0, advanced=True)
    style_scale: float = setting(1.0, "float", "Style scale", "paintings resized to this times the picture's size: "
                                 "smaller makes larger brush strokes", "style", low=0, high=4.0, positive=True,
                                 advanced=True)
    style_blend: tuple = setting(
        (), "floats", "Blend", "one weight per painting, in their order (normalised); default: even", "style",
        low=0, longest=MAX_STYLES, flag="--style-weights", page=False)
    style_layers: LayerWeights = setting(_even(SEED_STYLE_LAYERS), "layers", "Style layers", LAYERS_HELP.format(
        " whose Gram matrices carry the style"), "style", advanced=True)
    content_layers: LayerWeights = setting(_even((SEED_CONTENT_LAYER,)), "layers", "Content layers",
                                           LAYERS_HELP.format(" whose features carry the content"), "style",
                                           advanced=True)
    pooling: str = setting("avg", "choice", "Pooling", "VGG19's pooling: average (smoother) or max (the "
                           "TensorFlow step only)", "style", choices=("avg", "max"), advanced=True)
    memory_limit: int = setting(
        0, "int", "Memory limit", "memory the run may use: a scale that would need more runs in overlapping tiles "
        "(with Adam), and a picture that cannot fit even so is refused with the size that would", "memory",
        unit="MB", off=0, off_means="3/4 of the memory available", low=256, high=MAX_MEMORY_MB, advanced=True)
    tile: int = setting(0, "int", "Tile", "run the scales larger than this in tiles of this side", "memory",
                        unit="px", off=0, off_means="only as the memory limit needs", low=64, high=MAX_SIZE,
                        multiple=16, advanced=True)
    step_engine: str = setting(
        "auto", "choice", "Step engine", "what computes each loss-and-gradient step: tf (TensorFlow GradientTape, "
        "the reference), ort (the step exported to ONNX once, run by ONNX Runtime; average pooling only), or auto "
        "(ort wherever it can run: its graph cached, or TensorFlow here to export it once; tf otherwise)", "engine",
        choices=("auto", "tf", "ort"),
        choice_help=("ONNX Runtime where it can run", "TensorFlow, the reference", "ONNX Runtime: fastest on a CPU"))
    targets: str = setting("ort", "choice", "Targets by", "backend for the style Grams and content features (ONNX "
                           "Runtime once exported and checked, or TensorFlow)", "engine", choices=("ort", "tf"),
                           advanced=True)
    jit: bool = setting(True, "bool", "XLA", "XLA-compile the TensorFlow step", "engine", flag="--no-xla",
                        advanced=True)
    winograd: bool = setting(True, "bool", "Winograd", "the ONNX Runtime step on a CPU computes its convolutions "
                             "of 128 channels or more by Winograd F(4x4, 3x3) or F(6x6, 3x3), as pays on the "
                             "CPU (1.3-1.6x faster at 512 px, 0.3 GB more memory)", "engine", flag="--no-winograd",
                             advanced=True)
    style_loss: str = setting(
        "gram", "choice", "Style loss", "how the picture's features are compared with the paintings': gram (Gram "
        "matrices, Gatys et al.), w2 (each layer's mean and covariance: Gaussian Wasserstein-2) or sliced (sliced "
        "Wasserstein: sorted random projections); w2 and sliced without masks or tiles", "style",
        choices=("gram", "w2", "sliced"),
        choice_help=("Gram matrices", "mean and covariance (Wasserstein-2)", "sorted projections (sliced "
                     "Wasserstein)"), advanced=True)
    scale_stop: float = setting(
        0.5, "float", "Scale stop", "a coarse scale ends once its loss fell by less than this fraction over its "
        "last 10 evaluations, and the evaluations it saved go to the last scale (0: every scale runs its count)",
        "schedule", low=0, high=100.0, advanced=True)
    precision: str = setting(
        "fp32", "choice", "Precision", "bf16: the TensorFlow step's convolutions in bfloat16, on a CPU with "
        "AVX512_BF16 or AMX (AMD Zen 4 on, recent Xeons); refused on others, where it would be slower", "engine",
        choices=("fp32", "bf16"), choice_help=("float32", "bfloat16 convolutions (TensorFlow step)"), advanced=True)

    def __post_init__(self):
        for name, control in CONTROLS.items():
            object.__setattr__(self, name, control.check(getattr(self, name)))
        self._check()

    def _check(self) -> None:
        """What no one field says alone."""
        if not self.style_layers and not self.content_layers:
            raise SettingsError("style_layers", "and content_layers are both empty: at least one layer is needed")
        if self.style_blend and sum(self.style_blend) <= 0:
            raise SettingsError("style_blend", "must have a positive sum")
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
        if self.style_size(self.size) > MAX_SIZE:
            raise SettingsError("style_scale", f"{self.style_scale:g} makes the paintings {self.style_size(self.size)} "
                                               f"px at size {self.size}; at most {MAX_SIZE}")

    def check_styles(self, count: int) -> None:
        """What depends on the number of style images: a blend weight for each."""
        if count < 1:
            raise SettingsError("style_blend", "needs at least one style image")
        if count > MAX_STYLES:
            raise SettingsError("style_blend", f"cannot blend {count} style images; at most {MAX_STYLES}")
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

    def style_size(self, longest: int) -> int:
        """The paintings' longest side for a scale whose longest side is ``longest``."""
        return max(16, round(longest * self.style_scale))

    def blend(self, count: int) -> list[float]:
        weights = self.style_blend or (1.0,) * count
        return [w / sum(weights) for w in weights]

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain JSON-ready values (layers as ``{name: weight}``)."""
        data = {name: getattr(self, name) for name in CONTROLS}
        data["style_layers"], data["content_layers"] = dict(self.style_layers), dict(self.content_layers)
        data["style_blend"], data["scale_iterations"] = list(self.style_blend), list(self.scale_iterations)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping) -> "Settings":
        """The inverse of ``to_dict``, and what JSON gives: unknown keys are an error naming them."""
        if not isinstance(data, Mapping):
            raise SettingsError("settings", f"must be a JSON object of settings, not {_shown(data)}")
        unknown = sorted(str(k) for k in data if k not in CONTROLS)
        if unknown:
            raise SettingsError(unknown[0], "is not a setting")
        return cls(**dict(data))

    @classmethod
    def from_text(cls, texts: Mapping, typed: Mapping | None = None) -> "Settings":
        """Settings from text (the CLI's arguments, a form's fields) over typed values (JSON's, a
        command's own defaults): each text read by its field's ``Control.parse``."""
        unknown = sorted(str(k) for k in [*texts, *(typed or {})] if k not in CONTROLS)
        if unknown:
            raise SettingsError(unknown[0], "is not a setting")
        return cls.from_dict({**(typed or {}), **{k: CONTROLS[k].parse(v) for k, v in texts.items()}})


CONTROLS: dict[str, Control] = {f.name: dataclasses.replace(f.metadata["control"], name=f.name)
                                for f in dataclasses.fields(Settings)}
DEFAULTS = Settings()


@dataclass(frozen=True)
class ImageInput:
    """A picture a run takes besides the photograph and the paintings: ``name`` is the keyword of
    ``Stylizer.run`` and the key in a picture's metadata, ``form`` the API's file field, ``flag``
    the CLI's (none: another option gives it). ``per_style``: one for each painting, in their
    order; ``region``: the page offers to draw it as a rectangle on the photograph; ``sets``: the
    ``(setting, choice)`` that uses it (and that giving it implies)."""
    name: str
    label: str
    help: str
    form: str
    flag: str = ""
    per_style: bool = False
    region: bool = False
    sets: tuple = ()


IMAGE_INPUTS = (
    ImageInput("masks", "Where", "spatial control: one greyscale mask per painting, in their order; each painting "
               "applies where its mask is white (soft edges blend; resized to the photograph)", "mask", "--mask",
               per_style=True, region=True),
    ImageInput("content_mask", "Keep the photograph", "greyscale: the photograph is kept where it is white and may go "
               "where it is black", "content_mask", "--content-mask", region=True),
    ImageInput("init_image", "Starting picture", "the picture the run starts from (init image; the CLI: --init FILE)",
               "init_image", sets=("init", "image")),
)


def flag_for(name: str) -> str:
    """The CLI's flag for a setting or an image input, as its errors name it."""
    if name in CONTROLS:
        return CONTROLS[name].cli_flag
    inputs = {i.name: i.flag for i in IMAGE_INPUTS if i.flag}
    return inputs.get(name, "--" + name.replace("_", "-"))

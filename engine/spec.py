"""What a VGG19 feature extractor and an exported step compute, as values both backends agree on,
and the step graph's inputs and outputs (no TensorFlow here)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from models.vgg19 import check_layers, layer_index, min_side

SEED_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
SEED_CONTENT_LAYER = "block5_conv2"
DEFAULT_LAYERS = SEED_STYLE_LAYERS + (SEED_CONTENT_LAYER,)
PREPROCESSING = "rgb01*255->bgr-imagenet_mean"  # keras.applications.vgg19.preprocess_input
SPEC_VERSION = 1
STEP_VERSION = 5  # bump whenever the exported step graph or its labels change, so that cached ones are redone


@dataclass(frozen=True)
class FeatureSpec:
    """Layers (in VGG19 order), pooling and the weights' identity: everything that decides the outputs."""
    weights_sha256: str
    layers: tuple[str, ...] = DEFAULT_LAYERS
    pooling: str = "avg"
    preprocessing: str = field(default=PREPROCESSING)
    input: str = "rgb01_nhwc"
    version: int = SPEC_VERSION

    def __post_init__(self):
        layers = tuple(dict.fromkeys(self.layers))
        if not layers:
            raise ValueError("a feature spec needs at least one layer")
        check_layers(layers)
        if self.pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be 'avg' or 'max', not {self.pooling!r}")
        object.__setattr__(self, "layers", tuple(sorted(layers, key=layer_index)))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FeatureSpec":
        data = json.loads(text)
        data["layers"] = tuple(data["layers"])
        return cls(**data)

    def key(self) -> str:
        """A short stable name for files that hold this spec."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    def describe(self) -> str:
        return f"VGG19 {self.pooling}-pool -> {', '.join(self.layers)} (weights {self.weights_sha256[:12]})"


@dataclass(frozen=True)
class StepSpec:
    """What an exported loss-and-gradient step computes: the features it runs and which of them
    are style and content layers (in the order of the graph's inputs). One graph takes any image
    of at least ``min_side`` px a side. ``masked``: the graph takes style and content masks
    (spatial control); a picture without them runs the graph without their inputs, which is 5%
    faster at 512 px (docs/BENCHMARKS.md)."""
    features: FeatureSpec
    style_layers: tuple[str, ...]
    content_layers: tuple[str, ...]
    masked: bool = False
    style_loss: str = "gram"     # gram | w2 | sliced (engine.style_targets)
    version: int = STEP_VERSION

    def __post_init__(self):
        object.__setattr__(self, "style_layers", tuple(self.style_layers))
        object.__setattr__(self, "content_layers", tuple(self.content_layers))
        if set(self.style_layers) | set(self.content_layers) != set(self.features.layers):
            raise ValueError("a step's style and content layers must be exactly its features' layers")
        if self.style_loss not in STYLE_INPUTS:
            raise ValueError(f"style_loss must be one of {', '.join(STYLE_INPUTS)}, not {self.style_loss!r}")
        if self.masked and self.style_loss != "gram":
            raise ValueError("masks work with the Gram style loss only")

    @property
    def min_side(self) -> int:
        return min_side(self.features.layers)

    def input_names(self) -> list[str]:
        """The graph's inputs, in order: the image, then what ``step_feeds`` makes of the targets."""
        masks = self.masked
        return (["image"] + [f"content.{n}" for n in self.content_layers]
                + [f"content_mask.{n}" for n in self.content_layers if masks]
                + [f"{kind}.{n}" for n in self.style_layers for kind in STYLE_INPUTS[self.style_loss]]
                + [f"mask.{n}" for n in self.style_layers if masks]
                + ["region_weights"] * masks + ["style_layer_weights", "content_layer_weights", "loss_weights"])

    def to_json(self) -> str:
        data = asdict(self)
        data["features"] = json.loads(self.features.to_json())
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "StepSpec":
        data = json.loads(text)
        data["features"] = FeatureSpec.from_json(json.dumps(data["features"]))
        return cls(**data)

    def key(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    def describe(self) -> str:
        loss = "" if self.style_loss == "gram" else f" ({self.style_loss} style loss)"
        return (f"loss-and-gradient step{' with masks' if self.masked else ''}{loss}: style "
                f"{', '.join(self.style_layers) or '-'}; content {', '.join(self.content_layers) or '-'} "
                f"({self.features.pooling}-pool, "
                f"weights {self.features.weights_sha256[:12]})")


# the inputs each style loss takes per style layer (engine.style_targets makes them)
STYLE_INPUTS = {"gram": ("gram",), "w2": ("mean", "cov_sqrt"), "sliced": ("projection", "sorted")}

# The step graph's outputs, in order; ``loss_weights`` holds (content, style, tv) in this order.
STEP_OUTPUTS = ("loss", "content", "style", "tv", "grad")
LOSS_PARTS = ("content", "style", "tv")


def step_feeds(spec, targets) -> dict[str, np.ndarray]:
    """Every input of the step graph but the image, as float32 arrays keyed by input name, from one
    scale's ``engine.targets.Targets``: Gram matrices ``(R, c, c)`` (or ``(c, c)``, one region) and
    content features by layer, the per-layer and loss weights, and, for a ``spec.masked`` graph,
    the masks brought to each layer's resolution (default: one region of ones, the content kept
    everywhere); a graph without masks refuses them. For the ``w2`` and ``sliced`` style losses,
    ``targets.grams`` holds ``engine.style_targets.blend_statistics``' dicts."""
    from .masks import layer_masks
    h, w = targets.shape
    kind = getattr(spec, "style_loss", "gram")
    style_weights = {n: targets.style_layers[n] for n in spec.style_layers}
    feeds = {f"content.{n}": np.asarray(targets.contents[n], np.float32) for n in spec.content_layers}
    regions = 1
    if kind == "gram":
        grams = {n: np.asarray(targets.grams[n], np.float32) for n in spec.style_layers}
        grams = {n: g.reshape(-1, *g.shape[-2:]) for n, g in grams.items()}
        regions = next(iter(grams.values())).shape[0] if grams else 1
        feeds.update({f"gram.{n}": grams[n] for n in spec.style_layers})
    else:   # each layer's weight carries its scale (a blank picture costs what the Gram loss says)
        for n in spec.style_layers:
            target = targets.grams[n]
            feeds.update({f"{name}.{n}": np.asarray(target[name], np.float32) for name in STYLE_INPUTS[kind]})
            style_weights[n] *= target["scale"]
    if spec.masked:
        masks = (np.ones((regions, h, w), np.float32) if targets.style_masks is None
                 else np.asarray(targets.style_masks, np.float32))
        if masks.shape != (regions, h, w):
            raise ValueError(f"style masks are {masks.shape}, not ({regions}, {h}, {w}) for {regions} region(s)")
        kept = (np.ones((1, h, w), np.float32) if targets.content_mask is None
                else np.asarray(targets.content_mask, np.float32)[None])
        if kept.shape != (1, h, w):
            raise ValueError(f"the content mask is {kept.shape[1:]}, not ({h}, {w})")
        feeds.update({f"content_mask.{n}": m for n, m in layer_masks(kept, spec.content_layers).items()})
        feeds.update({f"mask.{n}": m for n, m in layer_masks(masks, spec.style_layers).items()})
        region_weights = np.ones(regions) if targets.region_weights is None else targets.region_weights
        feeds["region_weights"] = np.asarray(region_weights, np.float32).reshape(regions)
    elif targets.style_masks is not None or targets.content_mask is not None or targets.region_weights is not None \
            or regions != 1:
        raise ValueError("masks and style regions need the step with masks (a StepSpec with masked=True)")
    feeds["style_layer_weights"] = np.array([style_weights[n] for n in spec.style_layers], np.float32)
    feeds["content_layer_weights"] = np.array([targets.content_layers[n] for n in spec.content_layers], np.float32)
    feeds["loss_weights"] = np.array(targets.loss_weights, np.float32).reshape(len(LOSS_PARTS))
    return {name: np.ascontiguousarray(value) for name, value in feeds.items()}

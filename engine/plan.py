"""What a run will do, decided before its first evaluation from the settings and the photograph's
shape: each scale's size and evaluations, and which scales run in tiles within the memory limit.

The refusals live here (a picture too small for the layers, one that cannot fit even in tiles),
and need no weights, no models and no engine, so that a server makes them when a job is
submitted rather than when it starts (``check``); ``Stylizer.plan`` adds the models the run needs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from models.vgg19 import min_side

from .settings import Settings, SettingsError
from .spec import FeatureSpec
from .tiles import MIN_TILE, choose_tile, estimate_mb, fits, tiled_estimate_mb


@dataclass(frozen=True)
class Plan:
    """What a run will do, decided before it starts."""
    settings: Settings
    shapes: tuple              # (h, w) of each scale, coarse to fine
    iterations: tuple          # evaluations at each scale
    step_engine: str           # tf | ort
    feature_spec: FeatureSpec
    feature_model: Path | None   # the exported feature extractor (targets by ONNX Runtime)
    step_graph: Path | None      # the exported step graph (step by ONNX Runtime)
    tiles: tuple = ()            # tile side of each scale; 0: the whole picture at once
    masked: bool = False         # the step takes masks (the picture has style or content masks)

    @property
    def evaluations(self) -> int:
        return sum(self.iterations)

    @property
    def memory_mb(self) -> float:
        """The run's peak memory as the model has it (its largest scale): what it reserves."""
        return peak_mb(self.step_engine, self.shapes, self.tiles)


def peak_mb(engine: str, shapes, sides) -> float:
    """The model's peak of a run's scales, each whole or in tiles of ``sides``."""
    return max((tiled_estimate_mb(engine, h, w, tile) if tile else estimate_mb(engine, h, w)
                for (h, w), tile in zip(shapes, sides or (0,) * len(shapes))), default=0.0)


def memory_limit(settings: Settings) -> float:
    """MB a run may plan for: its ``memory_limit``, else the whole of this process's budget (the
    runs of a process share it: ``engine.memory.budget``)."""
    from .memory import budget
    return settings.memory_limit or budget().total_mb


def schedule(settings: Settings, content_shape, log: Callable[[str], None] | None = None) -> list:
    """``((h, w), evaluations)`` of each scale for a photograph of ``content_shape``; scales whose
    shorter side the deepest layer cannot take are skipped, and a picture too small even at
    ``size`` is refused."""
    h, w = content_shape[:2]
    smallest = min_side(tuple(settings.style_layers) + tuple(settings.content_layers))

    def at(size: int) -> tuple[int, int]:
        return max(1, round(h * size / max(h, w))), max(1, round(w * size / max(h, w)))

    final = at(settings.size)
    if min(final) < smallest:
        raise SettingsError("size", f"{settings.size} makes this picture {final[1]}x{final[0]} px; these layers "
                                    f"need at least {smallest} px a side")
    scales, skipped = {}, 0
    for size, evaluations in settings.schedule():
        if min(at(size)) < smallest:
            skipped += 1
        else:   # two sizes that round to one shape: one scale, the finer one's count
            scales[at(size)] = evaluations
    if skipped and log:
        log(f"{skipped} coarse scale(s) skipped: under {smallest} px a side")
    return list(scales.items())


def tiles(settings: Settings, engine: str, shapes, log: Callable[[str], None] | None = None) -> tuple:
    """The tile side of each scale (0: the whole picture at once) within the memory limit, for the
    step ``engine`` (tf | ort); a picture that cannot fit even in tiles is refused, with the size
    that would."""
    if settings.tile:   # asked for: the scales larger than the tile run in tiles of it
        sides = tuple(settings.tile if max(h, w) > settings.tile else 0 for h, w in shapes)
        if any(sides) and settings.style_loss != "gram":
            raise SettingsError("style_loss", f"{settings.style_loss} works on whole pictures, not in tiles")
        return sides
    limit = memory_limit(settings)
    sides = tuple(choose_tile(engine, h, w, limit) for h, w in shapes)
    if None in sides:
        h, w = shapes[-1]
        size = settings.size
        while size > 16 and not fits(engine, round(h * size / settings.size), round(w * size / settings.size), limit):
            size = int(size * 0.95)
        raise SettingsError("size", f"{settings.size} needs about {tiled_estimate_mb(engine, h, w, MIN_TILE):.0f} MB "
                                    f"even in tiles, over the memory limit of {limit:.0f} MB; "
                                    + (f"--size {size} fits" if size > 16 else "no size fits"))
    if any(sides) and settings.style_loss != "gram":
        raise SettingsError("style_loss", f"{settings.style_loss} works on whole pictures, and this one needs tiles "
                                          f"within {limit:.0f} MB; use the gram style loss or a smaller size")
    for (h, w), tile in zip(shapes, sides):
        if tile and log:
            log(f"{w}x{h}: over the {limit:.0f} MB memory limit at once; in tiles of {tile} px, with Adam")
    return sides


def check(settings: Settings, content_shape) -> None:
    """Every refusal a plan would make for a photograph of ``content_shape``, made now; with
    ``step_engine`` auto, a picture is refused only when neither step engine could fit it."""
    shapes = [shape for shape, _ in schedule(settings, content_shape)]
    engines = ("ort", "tf") if settings.step_engine == "auto" else (settings.step_engine,)
    for i, engine in enumerate(engines):
        try:
            tiles(settings, engine, shapes)
            return
        except SettingsError:
            if i == len(engines) - 1:
                raise

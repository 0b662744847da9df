"""Where exported models live, and whether a file there is the one asked for.

No TensorFlow here: a machine without it (the GPU machines) runs what was exported elsewhere.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from engine.ort_backend import METADATA_SPEC, METADATA_STEP, read_metadata
from engine.spec import FeatureSpec, StepSpec
from models.weights import cache_dir


def feature_path(spec: FeatureSpec, precision: str = "fp32") -> Path:
    return cache_dir() / "onnx" / f"vgg19-{spec.key()}-{precision}.onnx"


def step_path(spec: StepSpec) -> Path:
    return cache_dir() / "onnx" / f"step-{spec.key()}-{spec.width}x{spec.height}.onnx"


def feature_mismatch(path: Path, spec: FeatureSpec, precision: str) -> str | None:
    """None when ``path`` holds the feature model for ``spec`` at ``precision``, else why not."""
    return _mismatch(path, METADATA_SPEC, FeatureSpec, spec, precision)


def step_mismatch(path: Path, spec: StepSpec) -> str | None:
    """None when ``path`` holds the step graph for ``spec``, else why not."""
    return _mismatch(path, METADATA_STEP, StepSpec, spec, None)


def _mismatch(path: Path, label: str, kind, spec, precision) -> str | None:
    if not path.is_file():
        return f"{path} does not exist"
    # Reading the labels parses the whole file, so a damaged one is caught here too.
    try:
        meta = read_metadata(path)
        found = kind.from_json(meta[label])
    except Exception as exc:  # a damaged or unlabelled file: say so, the caller replaces it
        return f"{path} is unreadable or unlabelled ({type(exc).__name__}: {str(exc)[:80]})"
    if found != spec:
        return f"{path} computes {found.describe()}"
    if precision is not None and meta.get("nst.precision") != precision:
        return f"{path} is {meta.get('nst.precision')}, not {precision}"
    return None


def cached_or_exported(path: Path, mismatch: str | None, what: str, export: Callable[[], Path]) -> Path:
    """``path`` when it already holds what is asked (``mismatch`` is None), else ``export()``.

    Exporting needs TensorFlow; where it cannot be imported the error says how to prepare
    the files on a machine that has it."""
    if mismatch is None:
        return path
    try:
        return export()
    except ImportError as exc:
        raise RuntimeError(f"no exported {what} in {path.parent}, and exporting one needs TensorFlow ({exc}); "
                           "run `stylize --export-only` with the same settings where TensorFlow is installed") from None

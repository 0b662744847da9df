"""Cross-backend parity: the same images through two feature backends, compared per layer.

A tool over the engine (``cli.py parity``, the exporter's checks, the GPU check). No TensorFlow
here: the reference side may come from a saved ``.npz`` made on another machine.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.images import bundled_photo
from engine.spec import FeatureSpec

PARITY_SIZES = ((64, 64), (256, 256), (333, 517), (512, 512))
# max |a - b| / max |reference|, per layer. fp32: both sides compute the same float32
# arithmetic up to summation order. tf32: 10-bit mantissa products on CUDA. fp16: half storage
# and products. int8: measured 0.015-0.09 on a photograph and noise at 96-512 px (worst in the
# deepest layers); 0.15 leaves room for other pictures and still fails a broken quantization
# (full-range weights on AVX2 measured 0.24-0.58).
PRECISION_TOLERANCE = {"fp32": 1e-5, "tf32": 2e-3, "fp16": 5e-3, "int8": 0.15}


def parity_images(size, random: bool = True, seed: int = 0):
    """The bundled photograph resized to ``size`` (h, w), then (if ``random``) uniform noise, float32 [0, 1]."""
    images = [bundled_photo(size)]
    if random:
        images.append(np.random.default_rng(seed).random((*size, 3), dtype=np.float32))
    return images


def compare(reference: dict, candidate: dict) -> list[dict]:
    rows = []
    for name, ref in reference.items():
        got = np.asarray(candidate[name], np.float64)
        ref = np.asarray(ref, np.float64)
        if got.shape != ref.shape:
            raise ValueError(f"{name}: shape {got.shape} differs from the reference's {ref.shape}")
        max_abs = float(np.max(np.abs(got - ref)))
        scale = float(np.max(np.abs(ref)))
        rows.append({"layer": name, "max_abs": max_abs, "max_rel": max_abs / scale if scale else max_abs,
                     "max_ref": scale})
    return rows


def save_reference(path, spec: FeatureSpec, reference_backend, sizes=PARITY_SIZES) -> int:
    """Run the reference backend on the parity images and store inputs and outputs."""
    arrays = {"__spec__": np.frombuffer(spec.to_json().encode(), np.uint8)}
    count = 0
    for size in sizes:
        for image in parity_images(size):
            outputs = reference_backend(image[None])
            arrays[f"{count}/input"] = image
            arrays.update({f"{count}/{k}": v for k, v in outputs.items()})
            count += 1
    np.savez_compressed(path, **arrays)
    return count


def load_reference(path):
    """``(spec, [(image, outputs), ...])`` from a file written by ``save_reference``."""
    with np.load(path) as npz:
        spec = FeatureSpec.from_json(npz["__spec__"].tobytes().decode())
        cases = []
        index = 0
        while f"{index}/input" in npz:
            outputs = {layer: npz[f"{index}/{layer}"] for layer in spec.layers}
            cases.append((npz[f"{index}/input"], outputs))
            index += 1
    return spec, cases


def run_parity(cases, candidate, tolerance: float) -> tuple[bool, list[dict]]:
    """Per case and layer, the errors of ``candidate`` against the stored reference outputs."""
    report, ok = [], True
    for image, reference in cases:
        for row in compare(reference, candidate(image[None])):
            row.update(size=f"{image.shape[0]}x{image.shape[1]}", ok=row["max_rel"] <= tolerance)
            ok &= row["ok"]
            report.append(row)
    return ok, report


def format_report(report: list[dict], tolerance: float) -> str:
    lines = [f"{'size':>9}  {'layer':<13} {'max abs err':>12} {'max |ref|':>10} {'max rel err':>12}"]
    for r in report:
        flag = "" if r["ok"] else f"  > {tolerance:.0e} FAIL"
        lines.append(f"{r['size']:>9}  {r['layer']:<13} {r['max_abs']:12.3e} {r['max_ref']:10.3e} "
                     f"{r['max_rel']:12.3e}{flag}")
    return "\n".join(lines)


def dump_json(path, payload) -> None:
    Path(path).write_text(json.dumps(payload, indent=2))

"""The fixed targets of a style transfer: content features and blended style Gram matrices,
computed once per scale by either backend. Imports TensorFlow only for the TF backend."""
from __future__ import annotations

import numpy as np

from .spec import FeatureSpec


def gram_numpy(features: np.ndarray) -> np.ndarray:
    """Gram matrix of ``(1, h, w, c)`` features divided by ``h * w``, as ``losses.gram_matrix``."""
    _, h, w, c = features.shape
    flat = features.reshape(h * w, c).astype(np.float32)
    return (flat.T @ flat) / np.float32(h * w)


def feature_model(spec: FeatureSpec, weights, log):
    """The exported feature extractor for ``spec``: the cached file, or exported now (TensorFlow)."""
    from exporter.cache import cached_or_exported, feature_mismatch, feature_path

    def export():
        from exporter.export import export
        result = export(spec, weights, log=log)
        log(f"exported the feature extractor once to {result.path} (parity {result.max_rel_error:.1e} vs TensorFlow)")
        return result.path

    path = feature_path(spec)
    return cached_or_exported(path, feature_mismatch(path, spec, "fp32"), "feature extractor for this spec", export)


class Targets:
    """``(content, styles, blend) -> (content features, blended Grams)`` by ONNX Runtime or TensorFlow."""

    def __init__(self, spec: FeatureSpec, weights, backend: str, provider: str, log):
        if backend == "ort":
            from .ort_backend import OrtFeatures
            self.backend = OrtFeatures(feature_model(spec, weights, log), spec=spec, provider=provider, lean=True)
        else:
            from .tf_backend import TfFeatures
            self.backend = TfFeatures(spec, weights)

    def __call__(self, content: np.ndarray, styles: list, blend, style_layers, content_layers):
        features = self.backend(content[None])
        content_targets = {n: features[n] for n in content_layers}
        grams = {n: 0.0 for n in style_layers}
        for style, share in zip(styles, blend):
            style_features = self.backend(style[None])
            for n in style_layers:
                grams[n] = grams[n] + share * gram_numpy(style_features[n])
        return content_targets, grams

    def describe(self) -> str:
        return self.backend.describe()

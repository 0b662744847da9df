"""The ONNX Runtime step engine: loss and image gradient from an exported step graph.

No TensorFlow here. It is a drop-in for ``engine.tf.objective.TfObjective``: ``f(x) -> (loss,
gradient, parts)`` on a float32 ``(1, H, W, 3)`` array, which is all the optimizers see.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from .backend import METADATA_STEP, BackendError, make_session
from ..spec import LOSS_PARTS, STEP_OUTPUTS, StepSpec, step_feeds


class OrtStep:
    """One step graph (any image size) on one provider; targets bound once per scale.

    The targets and weights are copied to the provider's device once (IO binding); each call
    sends the image and brings back only what the optimizer needs: the loss, its parts and
    the gradient. ``cuda_options`` reach the CUDA provider (e.g. ``{"use_tf32": "0"}``). On the
    CPU provider the 3x3 convolutions from block 3 on are computed by Winograd F(4x4, 3x3)
    (``engine.ort.winograd``; ``winograd=False``: the graph as exported). ``threads``: ONNX
    Runtime's intra-op threads (default: one per core). ``profile_prefix``: as ``make_session``'s.
    """

    def __init__(self, path, *, spec: StepSpec | None = None, provider: str = "auto",
                 threads: int | None = None, cuda_options: dict | None = None, winograd: bool = True,
                 profile_prefix: str | None = None):
        path = Path(path)
        self.winograd = 0  # convolutions computed by Winograd F(4x4, 3x3) (CPU only)

        def cpu_rewrite(model):
            from .winograd import rewrite
            model, external, self.winograd = rewrite(model)
            return model, external

        self.session, self.provider = make_session(path, provider, threads=threads, cuda_options=cuda_options,
                                                   memory_pattern=False, cpu_rewrite=cpu_rewrite if winograd else None,
                                                   profile_prefix=profile_prefix)
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_STEP not in meta:
            raise BackendError(f"{path}: not a step graph exported by this tool (no {METADATA_STEP} label)")
        self.spec = StepSpec.from_json(meta[METADATA_STEP])
        if spec is not None and spec != self.spec:
            raise BackendError(f"{path} is the {self.spec.describe()}, not the {spec.describe()}")
        self._device = "cuda" if self.provider == "cuda" else "cpu"
        self._binding = None
        self._kept = []  # the bound targets' OrtValues, which must outlive the binding

    def bind_targets(self, **targets) -> None:
        """The fixed inputs, as ``engine.spec.step_feeds`` takes them: the image size, Gram matrices
        ``(R, c, c)`` and content features ``(1, h, w, c)`` by layer, the per-layer weights,
        ``loss_weights`` as (content, style, tv), and optional style masks, region weights and
        content mask. The next images must have that size."""
        if (set(targets["style_layers"]) != set(self.spec.style_layers)
                or set(targets["content_layers"]) != set(self.spec.content_layers)):
            raise BackendError("the targets' layers differ from the step graph's; export it for these layers")
        feeds = step_feeds(self.spec, **targets)
        binding = self.session.io_binding()
        self._kept = []
        for name, array in feeds.items():
            ort_value = ort.OrtValue.ortvalue_from_numpy(array, self._device, 0)
            self._kept.append(ort_value)
            binding.bind_ortvalue_input(name, ort_value)
        for name in STEP_OUTPUTS[:-1]:
            binding.bind_output(name, "cpu")
        self._binding = binding

    def __call__(self, image: np.ndarray):
        """``(loss, gradient, parts)``; the gradient is a new array each call (an output ONNX Runtime
        allocates itself is reused by the next run, under any array still viewing it)."""
        if self._binding is None:
            raise RuntimeError("bind_targets() first")
        array = np.ascontiguousarray(image, np.float32)
        grad = np.empty_like(array)
        self._binding.bind_ortvalue_input("image", ort.OrtValue.ortvalue_from_numpy(array, self._device, 0))
        self._binding.bind_ortvalue_output("grad", ort.OrtValue.ortvalue_from_numpy(grad))
        self.session.run_with_iobinding(self._binding)
        loss, *parts = (float(v.numpy()) for v in self._binding.get_outputs()[:-1])
        return loss, grad, dict(zip(LOSS_PARTS, parts))

    def describe(self) -> str:
        conv = f", Winograd F(4x4, 3x3) in {self.winograd} convolutions" if self.winograd else ""
        return f"ONNX Runtime {ort.__version__} step ({self.provider.upper()}{conv})"

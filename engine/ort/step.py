"""The ONNX Runtime step engine: loss and image gradient from an exported step graph.

No TensorFlow here. It is a drop-in for ``engine.tf.objective.TfStep``: ``f(x) -> (loss,
gradient, parts)`` on a float32 ``(1, H, W, 3)`` array, which is all the optimizers see.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .backend import METADATA_STEP, BackendError, make_session, probe_provider
from ..spec import LOSS_PARTS, STEP_OUTPUTS, StepSpec, step_feeds

SIZED_SESSIONS = 4   # sessions made for one image size that a step keeps (a run's scales, a server's sizes)
# the sized graph replayed as a CUDA graph (one launch for its ~280 kernels): the step alone 8.1 ->
# 7.7 ms at 512 px on an H200 (docs/BENCHMARKS.md), but not yet run inside the optimizer on a GPU
# after its fix: off until a GPU check has (scripts/gpu_check.py measures both)
CUDA_GRAPH = False


class OrtStep:
    """One step graph (any image size) on one provider; targets bound once per scale.

    The targets and weights are copied to the provider's device once (IO binding); each call
    sends the image and brings back only what the optimizer needs: the loss, its parts and
    the gradient. ``cuda_options`` reach the CUDA provider (e.g. ``{"use_tf32": "0"}``). On the
    CPU provider the 3x3 convolutions with channels enough are computed by Winograd F(4x4, 3x3)
    or F(6x6, 3x3) as pays on this CPU (``engine.ort.winograd``; ``winograd=False``: the graph as
    exported). ``threads``: ONNX
    Runtime's intra-op threads (default: one per core). ``profile_prefix``: as ``make_session``'s.

    ``sized``: run a copy of the graph made for each image size (``engine.ort.static``), kept
    for the last few sizes; default on CUDA, where the any-size graph's shape arithmetic costs
    host round trips between kernels. ``fold_targets``: make the targets constants of that copy
    too (one session per ``bind_targets``), so that what depends on them alone is computed once.
    ``cuda_graph``: on CUDA, replay each sized graph as a CUDA graph (default ``CUDA_GRAPH``): its
    inputs and outputs are then buffers bound once (``image_buffer``; ``on_device`` returns the
    gradient's buffer, overwritten by the next call).
    """

    def __init__(self, path, *, spec: StepSpec | None = None, provider: str = "auto",
                 threads: int | None = None, cuda_options: dict | None = None, winograd: bool = True,
                 profile_prefix: str | None = None, sized: bool | None = None, fold_targets: bool = False,
                 cuda_graph: bool | None = None):
        path = Path(path)
        self.winograd = 0  # convolutions computed by Winograd (CPU only)
        self.tilings: dict[int, int] = {}  # how many of them by output block

        def cpu_rewrite(model):
            from . import winograd as tiling

            def choose(cin, cout):
                m = tiling.block_size(cin, cout)
                if m:
                    self.tilings[m] = self.tilings.get(m, 0) + 1
                return m
            self.tilings.clear()
            model, external, self.winograd = tiling.rewrite(model, choose=choose)
            return model, external

        self.path = path
        self._session_options = dict(threads=threads, cuda_options=cuda_options, memory_pattern=False,
                                     cpu_rewrite=cpu_rewrite if winograd else None, profile_prefix=profile_prefix)
        if not path.is_file():
            raise BackendError(f"{path}: no such ONNX model (run `python cli.py export` first)")
        self.provider = probe_provider(path, provider, threads=threads, cuda_options=cuda_options)
        self.sized = self.provider == "cuda" if sized is None else sized
        self.fold_targets = fold_targets and self.sized
        # on the CPU provider (the tests) ``cuda_graph=True`` binds the buffers the same way, with no graph
        self.cuda_graph = (self.sized and not self.fold_targets
                           and (CUDA_GRAPH and self.provider == "cuda" if cuda_graph is None else cuda_graph))
        self._cuda_options = cuda_options   # without the capture: the optimizer's graphs bind fresh outputs
        if self.cuda_graph:
            self._session_options["cuda_options"] = {**(cuda_options or {}), "enable_cuda_graph": "1"}
        self.image_buffer = None
        self._proto = None
        if self.sized:   # the graph is read once and specialized per size; no any-size session is made
            import onnx
            try:
                self._proto = onnx.load(str(path))
            except Exception as exc:  # onnx raises DecodeError and others for bad files
                raise BackendError(f"{path}: cannot read it as an ONNX model ({str(exc).splitlines()[0]})") from None
            meta = {p.key: p.value for p in self._proto.metadata_props}
            self.session = None
        else:
            self.session = make_session(path, self.provider, **self._session_options)[0]
            meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_STEP not in meta:
            raise BackendError(f"{path}: not a step graph exported by this tool (no {METADATA_STEP} label)")
        self.spec = StepSpec.from_json(meta[METADATA_STEP])
        if spec is not None and spec != self.spec:
            raise BackendError(f"{path} is the {self.spec.describe()}, not the {spec.describe()}")
        self.device = "cuda" if self.provider == "cuda" else "cpu"
        self._sized: OrderedDict = OrderedDict()   # input shapes -> session
        self._binding = None
        self._kept = []  # the bound targets' OrtValues, which must outlive the binding

    def sibling_session(self, model: bytes) -> ort.InferenceSession:
        """Another model as a session on this step's provider, with its options but never captured as
        a CUDA graph (the optimizer's small graphs, ``engine.ort.device_lbfgs``, which bind new
        outputs at every run: a replay would write into the first run's and leave those empty)."""
        return make_session(self.path, self.provider, threads=self._session_options["threads"],
                            cuda_options=self.sibling_cuda_options, model_bytes=model)[0]

    @property
    def sibling_cuda_options(self) -> dict | None:
        return self._cuda_options

    def _session_for(self, feeds: dict, shape) -> ort.InferenceSession:
        if not self.sized:
            return self.session
        from .static import specialize
        shapes = {"image": (1, *shape, 3), **{name: a.shape for name, a in feeds.items()}}
        if self.fold_targets:
            model = specialize(self._proto, {"image": shapes["image"]}, feeds)
            return make_session(self.path, self.provider, model_bytes=model, **self._session_options)[0]
        key = tuple(sorted(shapes.items()))
        if key not in self._sized:
            model = specialize(self._proto, shapes)
            session = make_session(self.path, self.provider, model_bytes=model, **self._session_options)[0]
            self._sized[key] = _Captured(session, feeds, shapes["image"], self.device) if self.cuda_graph else session
            while len(self._sized) > SIZED_SESSIONS:
                self._sized.popitem(last=False)
        elif self.cuda_graph:
            self._sized[key].load(feeds)
        self._sized.move_to_end(key)
        return self._sized[key]

    def bind_targets(self, targets) -> None:
        """One scale's ``engine.targets.Targets`` (made into the graph's inputs by ``step_feeds``);
        the next images must have its shape."""
        if (set(targets.style_layers) != set(self.spec.style_layers)
                or set(targets.content_layers) != set(self.spec.content_layers)):
            raise BackendError("the targets' layers differ from the step graph's; export it for these layers")
        feeds = step_feeds(self.spec, targets)
        sized = self._session_for(feeds, tuple(targets.shape))
        if self.cuda_graph:
            self.session, self._binding, self.image_buffer = sized.session, sized.binding, sized.image
            self._outputs = sized.outputs
            return
        self.session = sized
        binding = self.session.io_binding()
        self._kept = []
        if not self.fold_targets:
            for name, array in feeds.items():
                ort_value = ort.OrtValue.ortvalue_from_numpy(array, self.device, 0)
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
        if self.cuda_graph:
            self.image_buffer.update_inplace(array)
            loss, grad, parts = self.on_device()
            return loss, grad.numpy(), parts
        grad = np.empty_like(array)
        self._binding.bind_ortvalue_input("image", ort.OrtValue.ortvalue_from_numpy(array, self.device, 0))
        self._binding.bind_ortvalue_output("grad", ort.OrtValue.ortvalue_from_numpy(grad))
        self.session.run_with_iobinding(self._binding)
        loss, *parts = (float(v.numpy()) for v in self._binding.get_outputs()[:-1])
        return loss, grad, dict(zip(LOSS_PARTS, parts))

    def on_device(self, image: ort.OrtValue | None = None):
        """``(loss, gradient, parts)`` for an image already on this step's device, the gradient left
        there as an ``OrtValue`` (``engine.ort.device_lbfgs`` keeps the whole loop on the GPU).
        With a CUDA graph the image is read from ``image_buffer`` (``image=None``: already put
        there; another ``OrtValue`` is copied there through the host) and the gradient is a buffer
        of this step's, valid until the next call."""
        if self._binding is None:
            raise RuntimeError("bind_targets() first")
        if self.cuda_graph:
            if image is not None and image is not self.image_buffer:
                self.image_buffer.update_inplace(image.numpy())
            self.session.run_with_iobinding(self._binding)
            loss, *parts = (float(self._outputs[name].numpy()) for name in STEP_OUTPUTS[:-1])
            return loss, self._outputs["grad"], dict(zip(LOSS_PARTS, parts))
        self._binding.bind_ortvalue_input("image", image)
        self._binding.bind_output("grad", self.device)
        self.session.run_with_iobinding(self._binding)
        *scalars, grad = self._binding.get_outputs()
        loss, *parts = (float(v.numpy()) for v in scalars)
        return loss, grad, dict(zip(LOSS_PARTS, parts))

    def describe(self) -> str:
        conv = ", Winograd " + " and ".join(f"F({m}x{m}, 3x3) in {n}" for m, n in sorted(self.tilings.items())) \
            + " convolutions" if self.winograd else ""
        sized = ", a graph per size" if self.sized else ""
        sized += ", CUDA graph" if self.cuda_graph else ""
        return f"ONNX Runtime {ort.__version__} step ({self.provider.upper()}{conv}{sized})"


class _Captured:
    """A sized session replayed as a CUDA graph. A replay reads and writes the addresses its capture
    used, so every input and output is bound once, here, to a device buffer, and new targets or
    images are copied into those buffers rather than bound anew."""

    def __init__(self, session: ort.InferenceSession, feeds: dict, image_shape, device: str):
        self.session, self.binding = session, session.io_binding()
        self.inputs = {name: ort.OrtValue.ortvalue_from_numpy(array, device, 0) for name, array in feeds.items()}
        self.image = ort.OrtValue.ortvalue_from_shape_and_type(tuple(image_shape), np.float32, device, 0)
        for name, value in {**self.inputs, "image": self.image}.items():
            self.binding.bind_ortvalue_input(name, value)
        self.outputs = {name: ort.OrtValue.ortvalue_from_shape_and_type(tuple(image_shape) if name == "grad" else (),
                                                                         np.float32, device, 0)
                        for name in STEP_OUTPUTS}
        for name, value in self.outputs.items():
            self.binding.bind_ortvalue_output(name, value)

    def load(self, feeds: dict) -> None:
        for name, array in feeds.items():
            self.inputs[name].update_inplace(np.ascontiguousarray(array, np.float32))

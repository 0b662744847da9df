"""The ONNX Runtime feature backend. Imports no TensorFlow: it runs where only
onnxruntime(-gpu), numpy and Pillow are installed (the GPU machines)."""
from __future__ import annotations

import ctypes
import functools
import importlib.util
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..spec import FeatureSpec

PROVIDERS = ("auto", "cpu", "cuda")
METADATA_SPEC = "nst.spec"
METADATA_STEP = "nst.step"


class BackendError(RuntimeError):
    """The model or the provider asked for cannot be used; the message says why."""


def cuda_device_count() -> int:
    """GPUs the CUDA driver sees, asked of the driver directly so that a machine without one
    never makes ONNX Runtime log a red 'CUDA failed' error before it falls back."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if libcuda.cuInit(0) != 0 or libcuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


@functools.cache
def _load_pip_cuda_libraries() -> None:
    """CUDA and cuDNN installed as pip packages (``pip install ".[cuda]"``) are not on the loader's
    path; onnxruntime-gpu loads them from there when asked, before its first CUDA session."""
    if importlib.util.find_spec("nvidia") is None:
        return
    try:
        ort.preload_dlls(cuda=True, cudnn=True, msvc=False)
    except Exception:  # missing pieces show up as the CUDA provider failing to start, which is reported
        pass


def cuda_unavailable_reason() -> str | None:
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return f"this onnxruntime build ({ort.__version__}) has no CUDA execution provider"
    if cuda_device_count() == 0:
        return "no CUDA device (no NVIDIA driver or GPU on this machine)"
    return None


def read_metadata(path) -> dict[str, str]:
    """The model's metadata_props, read without building a session."""
    import onnx
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def make_session(path: Path, provider: str, *, threads: int | None = None, cuda_options: dict | None = None,
                 memory_pattern: bool = True, arena: bool = True,
                 cpu_rewrite=None, profile_prefix: str | None = None,
                 model_bytes: bytes | None = None) -> tuple[ort.InferenceSession, str]:
    """An ``InferenceSession`` on the provider asked for, and which provider really runs it.

    ``cpu``; ``cuda`` (an error when CUDA cannot run); ``auto`` (CUDA only when a device is
    there and the provider really initialises). ``memory_pattern=False`` trades nothing
    measurable in speed for much less memory on the big step graphs (512 px: peak 839 MB
    instead of 1297 MB, same time per step, measured here).

    ``cpu_rewrite(model) -> (model, {name: array})``, when given, rewrites the graph for the CPU
    provider only (``engine.ort.winograd``); the arrays are its initializers kept out of the
    serialized model, which ONNX Runtime copies in once. ``profile_prefix``: ONNX Runtime's profiler
    writes every node's time there (``session.end_profiling()`` names the file). ``model_bytes``: the
    model to run, serialized (a rewrite of the one at ``path``, which names it in messages)."""
    if not path.is_file():
        raise BackendError(f"{path}: no such ONNX model (run `python cli.py export` first)")
    if provider not in PROVIDERS:
        raise BackendError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_mem_pattern = memory_pattern
    options.enable_cpu_mem_arena = arena
    if threads:
        options.intra_op_num_threads = threads
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    # ONNX Runtime's idle threads spin after each run by default, on the cores the optimizer's own
    # work between two runs needs: at 512 px that work took 13-38 ms with spinning and 7-8 ms
    # without, and the step itself 1.05-1.14 s against 1.01 s (2 cores, same run)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers: list = ["CPUExecutionProvider"]
    reason = cuda_unavailable_reason() if provider in ("auto", "cuda") else None
    if provider == "cuda" and reason:
        raise BackendError(f"--provider cuda: {reason}")
    if provider in ("auto", "cuda") and not reason:
        _load_pip_cuda_libraries()
        cuda = {"cudnn_conv_algo_search": "HEURISTIC", "prefer_nhwc": "1"}
        cuda.update(cuda_options or {})
        providers = [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]
    model, external = model_bytes or str(path), []
    if cpu_rewrite is not None and providers == ["CPUExecutionProvider"]:
        import onnx
        try:
            loaded = onnx.load_from_string(model_bytes) if model_bytes else onnx.load(model)
        except Exception as exc:  # onnx raises DecodeError and others for bad files
            raise BackendError(f"{path}: cannot read it as an ONNX model ({str(exc).splitlines()[0]})") from None
        rewritten, arrays = cpu_rewrite(loaded)
        # the options keep only pointers: these must live until the session has copied them
        external = [(a, ort.OrtValue.ortvalue_from_numpy(a)) for a in arrays.values()]
        if external:
            options.add_external_initializers(list(arrays), [value for _, value in external])
        model = rewritten.SerializeToString()
        del loaded, rewritten  # the proto: ONNX Runtime parses the bytes
    try:
        session = ort.InferenceSession(model, options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise BackendError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from None
    used = "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
    if provider == "cuda" and used != "cuda":
        raise BackendError("--provider cuda: the CUDA provider did not initialise (CUDA or cuDNN libraries missing?)")
    return session, used


def probe_provider(path: Path, provider: str, *, threads: int | None = None, cuda_options: dict | None = None) -> str:
    """Which provider a session on ``provider`` would really run on (``make_session``'s rules), found
    with a one-node model so that the model at ``path`` is not loaded for it."""
    from onnx import TensorProto, helper
    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [value],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return make_session(path, provider, threads=threads, cuda_options=cuda_options,
                        model_bytes=model.SerializeToString())[1]


class OrtFeatures:
    """RGB float32 ``(N, H, W, 3)`` in [0, 1] -> ``{layer: array}``, by ONNX Runtime.

    ``provider`` as in ``make_session``; ``self.provider`` says which one runs.
    """

    def __init__(self, path, *, spec: FeatureSpec | None = None, provider: str = "auto",
                 threads: int | None = None, cuda_options: dict | None = None, lean: bool = False):
        path = Path(path)
        # lean: no arena and no memory pattern, so that memory goes back when the session does
        self.session, self.provider = make_session(path, provider, threads=threads, cuda_options=cuda_options,
                                                   memory_pattern=not lean, arena=not lean)

        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_SPEC not in meta:
            raise BackendError(f"{path}: not exported by this tool (no {METADATA_SPEC} metadata); re-export it")
        self.spec = FeatureSpec.from_json(meta[METADATA_SPEC])
        self.metadata = meta
        self.precision = meta.get("nst.precision", "fp32")
        if spec is not None and spec != self.spec:
            raise BackendError(f"{path} computes {self.spec.describe()}, not the requested "
                               f"{spec.describe()}; re-export with `python cli.py export`")
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        if sorted(self.output_names) != sorted(self.spec.layers):
            raise BackendError(f"{path}: outputs {self.output_names} do not match its spec's layers")

    def _prepare(self, images) -> np.ndarray:
        array = np.asarray(images, dtype=np.float32)
        if array.ndim == 3:
            array = array[None]
        if array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"expected RGB images (N, H, W, 3), got shape {array.shape}")
        return np.ascontiguousarray(array)

    def __call__(self, images) -> dict[str, np.ndarray]:
        outputs = self.session.run(self.output_names, {self.input_name: self._prepare(images)})
        return dict(zip(self.output_names, outputs))

    def run_on_device(self, images) -> dict:
        """Features as ``OrtValue``s left where the provider computed them (IO binding):
        on CUDA, nothing crosses back to the host until ``.numpy()`` is called."""
        binding = self.session.io_binding()
        device = "cuda" if self.provider == "cuda" else "cpu"
        binding.bind_ortvalue_input(self.input_name,
                                    ort.OrtValue.ortvalue_from_numpy(self._prepare(images), device, 0))
        for name in self.output_names:
            binding.bind_output(name, device)
        self.session.run_with_iobinding(binding)
        return dict(zip(self.output_names, binding.get_outputs()))

    def describe(self) -> str:
        return f"ONNX Runtime {ort.__version__} ({self.provider.upper()}, {self.precision})"


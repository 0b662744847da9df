"""Where exported models live, and the one place a run gets them.

A run asks the store for everything it will need before its first evaluation. The store answers
with the cached file when its labels say it computes what is asked; otherwise it exports it in a
child process (``python -m exporter``, which needs TensorFlow) under a file lock, so that two
processes never export the same file at once and the export's memory goes back to the system
when it ends; or, where exporting is not allowed (a server request, a TensorFlow-free worker),
it fails at once with one line naming what is missing. No TensorFlow here.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from models.atomic import file_lock
from models.weights import VGG19Weights, WeightsError, cache_dir

from .ort.backend import METADATA_SPEC, METADATA_STEP, read_metadata
from .spec import FeatureSpec, StepSpec

EXIT_NO_TENSORFLOW = 3   # the export child's status when TensorFlow cannot be imported
_PER_SIZE_STEP = re.compile(r"step-[0-9a-f]{12}-\d+x\d+\.onnx")   # STEP_VERSION 1: one graph per image size
# what an export took on the team's 2-core CPUs (docs/BENCHMARKS.md): said before it starts
EXPORT_TIME = {"step graph": "about 35-60 s", "feature extractor": "about 15-20 s"}
HOW_TO_PREPARE = ("run `python cli.py stylize --export-only` with the same settings where TensorFlow is installed "
                  "and copy the folder here")


class MissingArtifact(RuntimeError):
    """A model the run needs is not in the store and cannot be exported here; one line says which."""


class ExportFailed(RuntimeError):
    """The export child ran and failed; the message is its last line."""


def feature_mismatch(path: Path, spec: FeatureSpec, precision: str) -> str | None:
    """None when ``path`` holds the feature model for ``spec`` at ``precision``, else why not."""
    return _mismatch(path, METADATA_SPEC, FeatureSpec, spec, precision)


def step_mismatch(path: Path, spec: StepSpec) -> str | None:
    """None when ``path`` holds the step graph for ``spec``, else why not."""
    return _mismatch(path, METADATA_STEP, StepSpec, spec, None)


def _mismatch(path: Path, label: str, kind, spec, precision) -> str | None:
    if not path.is_file():
        return f"{path.name} does not exist"
    # Reading the labels parses the whole file, so a damaged one is caught here too.
    try:
        meta = read_metadata(path)
        found = kind.from_json(meta[label])
    except Exception as exc:  # a damaged, unlabelled or older file: say so, the caller replaces it
        return f"{path.name} is unreadable, unlabelled or of an older version ({type(exc).__name__})"
    if found != spec:
        return f"{path.name} computes {found.describe()}"
    if precision is not None and meta.get("nst.precision") != precision:
        return f"{path.name} is {meta.get('nst.precision')}, not {precision}"
    return None


def export_lock(path: Path):
    """The lock every exporter of ``path`` holds while it writes it (the store's children, ``cli.py export``)."""
    return file_lock(path.with_name(path.name + ".lock"))


def weights_identity(path) -> VGG19Weights:
    """The identity of the weights an exported model was made from, without their arrays: all a
    run needs of the weights when ONNX Runtime computes both the targets and the steps, on a
    machine that has the exported models but neither the weights file nor a network."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such exported model")
    try:
        sha256 = read_metadata(path)["nst.weights_sha256"]
    except KeyError:
        raise WeightsError(f"{path}: no nst.weights_sha256 label, so not exported by this tool; re-export it") from None
    except Exception as exc:  # onnx raises DecodeError and others for damaged files
        raise WeightsError(f"{path}: cannot read it as an ONNX model ({type(exc).__name__})") from None
    return VGG19Weights({}, {}, sha256, f"the identity ({sha256[:12]}) of the weights {path.name} was exported "
                                        "from (no arrays here: the exported models hold them)")


def _stamp(path: Path):
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


class ArtifactStore:
    """The exported feature extractors and step graphs of one folder (default: the user cache's
    ``onnx/``). ``exports=False``: never start an export, fail with ``MissingArtifact`` instead.
    ``log`` hears what an export prints."""

    def __init__(self, root=None, *, exports: bool = True, log=None):
        self.root = Path(root) if root else cache_dir() / "onnx"
        self.exports = exports
        self.log = log or (lambda *_: None)
        self._checked: dict = {}   # path -> (modification time, size) when its labels last matched
        self._swept = False        # per-size step graphs of an earlier version looked for

    def feature_path(self, spec: FeatureSpec, precision: str = "fp32") -> Path:
        return self.root / f"vgg19-{spec.key()}-{precision}.onnx"

    def step_path(self, spec: StepSpec) -> Path:
        return self.root / f"step-{spec.key()}.onnx"

    def feature_model(self, spec: FeatureSpec, precision: str = "fp32") -> Path:
        path = self.feature_path(spec, precision)
        return self._get(path, lambda: feature_mismatch(path, spec, precision), "feature extractor",
                         ["feature", "--spec", spec.to_json(), "--precision", precision])

    def step_graph(self, spec: StepSpec) -> Path:
        path = self.step_path(spec)
        found = self._get(path, lambda: step_mismatch(path, spec), "step graph", ["step", "--spec", spec.to_json()])
        if not self._swept:
            self._remove_per_size_graphs()
            self._swept = True
        return found

    def has_step_graph(self, spec: StepSpec) -> bool:
        """Whether the step graph for ``spec`` is here already (nothing is exported)."""
        path = self.step_path(spec)
        stamp = _stamp(path)
        if stamp is not None and self._checked.get(path) == stamp:
            return True
        if step_mismatch(path, spec) is None:
            self._checked[path] = stamp
            return True
        return False

    def can_export(self) -> bool:
        """Whether this store may export and the packages an export needs are installed here."""
        import importlib.util
        try:
            return self.exports and all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "tf2onnx"))
        except (ImportError, ValueError):   # an import hook that refuses them, a broken installation
            return False

    def _get(self, path: Path, mismatch, what: str, command: list[str]) -> Path:
        # reading the labels parses the whole file (0.3 s for a step graph): once per version of it
        stamp = _stamp(path)
        if stamp is not None and self._checked.get(path) == stamp:
            return path
        reason = mismatch()
        if reason is None:
            self._checked[path] = _stamp(path)
            return path
        if not self.exports:
            raise MissingArtifact(f"no exported {what} for these settings in {self.root} ({reason}), and this "
                                  f"engine may not export; {HOW_TO_PREPARE}")
        if not self.can_export():   # said at once, not after announcing an export that cannot start
            raise MissingArtifact(f"no exported {what} for these settings in {self.root}, and exporting it needs "
                                  f"TensorFlow and tf2onnx, not installed here; {HOW_TO_PREPARE}")
        with export_lock(path):
            if mismatch() is not None:  # else another process exported it while this one waited
                self._export(command + ["--output", str(path)], what)
        self._checked[path] = _stamp(path)
        return path

    def _export(self, command: list[str], what: str) -> None:
        root = str(Path(__file__).resolve().parent.parent)  # so that a source checkout finds `exporter` too
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self.log(f"exporting the {what} once (TensorFlow + tf2onnx, in a separate process; {EXPORT_TIME[what]}, "
                 f"and every later run reuses it) ...")
        child = subprocess.Popen([sys.executable, "-m", "exporter", *command], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env)
        last = ""
        for line in child.stderr:
            if line.strip():
                last = line.strip()
                self.log(last)
        output = child.stdout.read()
        status = child.wait()
        if status == EXIT_NO_TENSORFLOW:
            raise MissingArtifact(f"no exported {what} for these settings in {self.root}, and {last}; {HOW_TO_PREPARE}")
        if status != 0:
            raise ExportFailed(f"exporting the {what} failed: {last or f'exit status {status}'}")
        result = json.loads(output.strip().splitlines()[-1])
        self.log(f"exported the {what} in {result['seconds']:.0f} s (export process peak "
                 f"{result['peak_rss_mb']:.0f} MB): {command[command.index('--output') + 1]}")

    def _remove_per_size_graphs(self) -> None:
        """An earlier version exported one step graph per image size (~120 MB each); the one graph
        of any size replaces them all."""
        stale = [p for p in self.root.glob("step-*-*x*.onnx") if _PER_SIZE_STEP.fullmatch(p.name)]
        if stale:
            size = sum(p.stat().st_size for p in stale) / 1e6
            for p in stale:
                p.unlink(missing_ok=True)
            self.log(f"removed {len(stale)} per-size step graph(s) of an earlier version ({size:.0f} MB)")

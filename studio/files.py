"""A job's files under ``--data``: its inputs, written when it is accepted and read when it runs, so
that a restart resumes what was waiting; its previews and result; and pruning of old jobs.

Every file is written whole or not at all (a temporary name, then a rename): a full disk or a
crash leaves the old state or nothing, never half a picture. Inputs are kept as lossless PNGs of
what the run will use (already no larger than it needs), in a folder per job."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from models.atomic import atomic_path

MANIFEST = "job.json"


class DiskFull(OSError):
    """A job's file could not be written under ``--data`` (full, over a quota, read-only)."""


class JobFiles:
    def __init__(self, data: Path):
        self.data = Path(data)
        self.results, self.previews, self.inputs = self.data / "results", self.data / "previews", self.data / "inputs"
        for folder in (self.results, self.previews, self.inputs):
            folder.mkdir(parents=True, exist_ok=True)

    def result(self, job_id: str) -> Path:
        return self.results / f"{job_id}.png"

    def preview(self, job_id: str) -> Path:
        return self.previews / f"{job_id}.jpg"

    # -- inputs ---------------------------------------------------------------------------

    def save_inputs(self, job_id: str, content: np.ndarray, styles: list, pictures: dict) -> None:
        """The pictures of an accepted job, in a folder that appears whole (renamed into place) or
        not at all. ``DiskFull`` (with nothing left behind) when they cannot be written."""
        from PIL import Image
        folder, building = self.inputs / job_id, self.inputs / f".{job_id}.tmp"
        manifest = {"content": "content.png", "styles": [f"style-{i}.png" for i in range(len(styles))],
                    "pictures": {}}   # name -> a file, or a list of files (masks: one per painting)
        files = {manifest["content"]: content, **dict(zip(manifest["styles"], styles))}
        for name, value in pictures.items():
            if isinstance(value, list):
                manifest["pictures"][name] = [f"{name}-{i}.png" for i in range(len(value))]
                files.update(zip(manifest["pictures"][name], value))
            else:
                manifest["pictures"][name] = f"{name}.png"
                files[f"{name}.png"] = value
        try:
            building.mkdir()
            for file, array in files.items():
                # compress_level 1: a fifth of the default level's time, for files that live until the run
                Image.fromarray(array).save(building / file, format="PNG", compress_level=1)
            (building / MANIFEST).write_text(json.dumps(manifest))
            os.rename(building, folder)
        except OSError as exc:
            shutil.rmtree(building, ignore_errors=True)
            raise DiskFull(f"the job's pictures could not be kept under --data: {_why(exc)}") from None

    def load_inputs(self, job_id: str) -> tuple[np.ndarray, list, dict]:
        """``(content, styles, pictures)`` as ``save_inputs`` got them."""
        from PIL import Image
        folder = self.inputs / job_id
        manifest = json.loads((folder / MANIFEST).read_text())

        def read(file: str) -> np.ndarray:
            with Image.open(folder / file) as img:
                return np.asarray(img.convert("RGB"))

        pictures = {name: [read(f) for f in file] if isinstance(file, list) else read(file)
                    for name, file in manifest["pictures"].items()}
        return read(manifest["content"]), [read(f) for f in manifest["styles"]], pictures

    def has_inputs(self, job_id: str) -> bool:
        return (self.inputs / job_id / MANIFEST).is_file()

    def remove_inputs(self, job_id: str) -> None:
        shutil.rmtree(self.inputs / job_id, ignore_errors=True)

    def remove(self, job_id: str) -> None:
        """Everything a job left."""
        self.remove_inputs(job_id)
        for path in (self.result(job_id), self.preview(job_id)):
            path.unlink(missing_ok=True)

    def tidy(self, keep_inputs) -> int:
        """Remove what a crash may have left: half-written input folders, inputs of no waiting or
        interrupted job (``keep_inputs``: their ids), and temporary files beside pictures."""
        removed = 0
        for path in self.inputs.iterdir():
            if path.name not in keep_inputs:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        for folder in (self.results, self.previews):
            for path in folder.glob(".*.tmp"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def write_result(self, job_id: str, image: np.ndarray, metadata: dict) -> str:
        """The finished picture (PNG, its settings in the metadata); ``DiskFull`` when it cannot
        be written, with no file left."""
        from engine.images import save_image
        try:
            save_image(image, self.result(job_id), metadata)
        except OSError as exc:
            raise DiskFull(f"the picture could not be written under --data: {_why(exc)}") from None
        self.preview(job_id).unlink(missing_ok=True)   # the result replaces it
        return self.result(job_id).name

    def write_preview(self, job_id: str, data: bytes) -> None:
        with atomic_path(self.preview(job_id)) as tmp:
            Path(tmp).write_bytes(data)


def _why(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)

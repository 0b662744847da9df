"""The work folder of a video (``OUTPUT.frames/`` by default): every finished frame as a PNG the
moment it is made, and a manifest of what makes them (the input's sha256, the styles', the
settings, the chunks), so that a run stopped anyhow (Ctrl-C, a crash, SIGKILL, a full disk)
resumes after its last finished frame and makes the same video as a run never stopped.

Each chunk keeps its own pictures (``c00/000123.png``): in an overlap two chunks make the same
frame, and a chunk's later frames follow its own picture of it. Every file is written beside its
name and renamed when whole, so a killed run leaves whole frames and litter, never half a frame.
One run at a time holds the folder (a lock), so two runs cannot write one video."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from .io import VideoError

FORMAT = "nst-video-work/1"


class WorkDir:
    def __init__(self, path, manifest: dict, lock):
        self.path, self.manifest, self._lock = Path(path), manifest, lock

    @classmethod
    def open(cls, path, manifest: dict, *, adopt: tuple = ()) -> "WorkDir":
        """Take the folder for ``manifest``, made if missing. A folder made for another input or
        other settings is refused with one line naming what differs (nothing in it is touched);
        the keys in ``adopt`` are taken from the folder's manifest instead (what the first run
        settled that a resumed one must follow, such as the chunks)."""
        path = Path(path)
        manifest = {"format": FORMAT, **json.loads(json.dumps(manifest))}
        try:
            path.mkdir(parents=True, exist_ok=True)
            lock = open(path / ".lock", "a")
        except OSError as exc:
            raise VideoError(f"{path}: cannot be used as the work folder ({exc.strerror or exc})") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise VideoError(f"{path}: another run is using this work folder") from None
        try:
            held = _read_manifest(path / "manifest.json")
            if held is not None:
                manifest.update({k: held[k] for k in adopt if k in held})
                different = [k for k in sorted(set(manifest) | set(held)) if k != "source" and
                             manifest.get(k) != held.get(k)]
                if different:
                    raise VideoError(f"{path}: holds frames made from {_what(different, held, manifest)}; delete "
                                     f"it to start over, or give another --work-dir")
            else:
                _write_json(path / "manifest.json", manifest)
            for leftover in path.glob("c*/.*.tmp"):   # a killed run's half-written frame
                leftover.unlink(missing_ok=True)
        except BaseException:
            lock.close()
            raise
        return cls(path, manifest, lock)

    def frame_path(self, chunk: int, t: int) -> Path:
        return self.path / f"c{chunk:02d}" / f"{t:06d}.png"

    def has(self, chunk: int, t: int) -> bool:
        return self.frame_path(chunk, t).is_file()

    def done(self, chunk: int, frames) -> int:
        """How many of ``frames`` (in order) this chunk has finished, counted from the first."""
        count = 0
        for t in frames:
            if not self.has(chunk, t):
                break
            count += 1
        return count

    def save(self, chunk: int, t: int, image: np.ndarray, notes: dict | None = None) -> None:
        """The frame as a PNG (fast compression: these are read back once), with ``notes`` as text,
        on disk before it is renamed into place."""
        path = self.frame_path(chunk, t)
        path.parent.mkdir(exist_ok=True)
        info = PngImagePlugin.PngInfo()
        info.add_text("nst-video", json.dumps(notes or {}))
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                Image.fromarray(image).save(f, format="PNG", pnginfo=info, compress_level=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def load(self, chunk: int, t: int) -> tuple[np.ndarray, dict]:
        with Image.open(self.frame_path(chunk, t)) as image:
            return np.asarray(image.convert("RGB")), json.loads(image.text.get("nst-video", "{}"))

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def close(self) -> None:
        if self._lock and not self._lock.closed:
            self._lock.close()


def _read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise VideoError(f"{path}: unreadable ({exc}); delete its folder to start over") from None


def _write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _what(keys, held: dict, wanted: dict) -> str:
    """The differences in words: "other settings (iterations 3, now 4)"."""
    words = {"input": "another input", "styles": "other style images", "settings": "other settings",
             "video": "other video settings", "format": "another version of this program",
             "layout": "other chunks"}
    parts = []
    for key in keys:
        text = words.get(key, f"another {key}")
        a, b = held.get(key), wanted.get(key)
        if key in ("settings", "video") and isinstance(a, dict) and isinstance(b, dict):
            fields = [f"{k} {a.get(k)}, now {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            text += f" ({'; '.join(fields[:3])})"
        parts.append(text)
    return " and ".join(parts)

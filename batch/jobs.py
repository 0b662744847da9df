"""What a batch makes: contents x styles -> one picture each, with a predictable name, skipped when
a picture with the same settings and the same input files is already there."""
from __future__ import annotations

import glob
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}


class BatchError(ValueError):
    """Inputs that make no batch (no such file, two outputs with one name): one line."""


@dataclass(frozen=True)
class Job:
    content: Path
    styles: tuple            # of Path; several only for a blend
    output: Path
    settings: dict           # Settings.to_dict()
    sources: dict            # what the picture's metadata records about its inputs (names, sha256)
    weights: str = ""        # the sha256 of the weights it is to be made with


@dataclass(frozen=True)
class Result:
    output: str
    status: str              # done | skipped | failed
    seconds: float = 0.0
    reason: str = ""


def expand(items) -> list[Path]:
    """Files as given; folders to their image files (not recursive); globs to what they match."""
    found = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            found.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
            if not matches:
                raise BatchError(f"{item}: matches no file")
            found += matches
        else:
            raise BatchError(f"{item}: no such file or folder")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise BatchError(f"no image files in {' '.join(map(str, items))}")
    return unique


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_jobs(contents, styles, settings, out_dir: Path, *, blend: bool = False, weights: str = "") -> list[Job]:
    """``<content stem>__<style stem>.png`` for each pair (``__blend-a+b`` for one blend of all the
    styles), to be made with the weights whose sha256 is ``weights``. Two contents or styles with
    the same stem would write one file twice: refused."""
    settings_dict = json.loads(json.dumps(settings.to_dict()))  # as read back from the metadata
    style_sets = [tuple(styles)] if blend else [(s,) for s in styles]
    hashes = {p: sha256(p) for p in {*contents, *styles}}
    jobs, names = [], {}
    for content in contents:
        for group in style_sets:
            label = ("blend-" + "+".join(s.stem for s in group)) if blend else group[0].stem
            output = out_dir / f"{content.stem}__{label}.png"
            if output in names:
                raise BatchError(f"{names[output]} and {content} would both write {output.name}: rename one")
            names[output] = content
            sources = {"content": str(content), "style": [str(s) for s in group],
                       "content_sha256": hashes[content], "style_sha256": [hashes[s] for s in group]}
            jobs.append(Job(content, group, output, settings_dict, sources, weights))
    return jobs


def is_done(job: Job) -> bool:
    """The output exists, is a whole picture, and was made with these settings from these files
    (content and style hashes; the paths may differ) with these weights (a picture that does not
    say which is made again). A setting the picture does not name came after it was made, and it
    was made as that setting's default does."""
    from engine.metadata import WEIGHTS_KEY, read_settings
    from engine.settings import DEFAULTS
    held = read_settings(job.output)
    if held is None or (job.weights and held.get(WEIGHTS_KEY) != job.weights):
        return False
    defaults = json.loads(DEFAULTS.to_json())
    expected = {**job.settings, "content_sha256": job.sources["content_sha256"],
                "style_sha256": job.sources["style_sha256"]}
    return all(held.get(key, defaults.get(key)) == value for key, value in expected.items())


def stylize_job(job: Job) -> Result:
    """Runs on a worker with its held engine. Problems with the inputs are a failed picture with one
    line (retrying would not help); anything else raises, so Dask retries it elsewhere."""
    from engine.images import ImageError, load_image, save_image
    from engine.metadata import picture_metadata
    from engine.settings import Settings, SettingsError

    from .cluster import engine
    start = time.perf_counter()
    if is_done(job):  # another attempt (a retry after a lost worker) finished it already
        return Result(str(job.output), "skipped", reason="already made")
    if job.weights and engine().weights.sha256 != job.weights:   # a cluster someone runs, set up otherwise
        return Result(str(job.output), "failed", reason=f"this worker holds other weights ({engine().weights.sha256[:12]}"
                                                         f"…, not {job.weights[:12]}…): give its --weights")
    try:
        content = load_image(job.content)
        styles = [load_image(s) for s in job.styles]
        settings = Settings.from_dict(job.settings)
        outcome = engine().run(content, styles, settings)
    except ImageError as exc:
        return Result(str(job.output), "failed", reason=str(exc))
    except SettingsError as exc:
        return Result(str(job.output), "failed", reason=f"{job.content.name}: {exc}")
    save_image(outcome.image, job.output, picture_metadata(outcome, **job.sources))
    return Result(str(job.output), "done", time.perf_counter() - start)

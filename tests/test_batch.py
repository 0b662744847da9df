"""Batch on a real Dask LocalCluster of two worker processes on loopback, the real engine and
weights, real files: every picture made once, a re-run skips them all, a worker killed mid-run
loses nothing and leaves nothing half-written."""
import os
import signal

import pytest

pytest.importorskip("distributed")

from batch.cluster import connect  # noqa: E402
from batch.jobs import expand, make_jobs  # noqa: E402
from batch.run import export_first, run_batch, summary  # noqa: E402
from engine.images import load_image, resize_exact, save_image  # noqa: E402
from engine.metadata import read_settings  # noqa: E402
from engine.settings import Settings  # noqa: E402

from conftest import EXAMPLES  # noqa: E402

SETTINGS = Settings(size=48, iterations=3, scales=1, targets="ort", step_engine="ort")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Three tiny photographs and two tiny paintings, as files."""
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "contents").mkdir()
    (folder / "styles").mkdir()
    for path in sorted((EXAMPLES / "content").glob("*.jpg")):
        save_image(resize_exact(load_image(path), (36, 48)), folder / "contents" / f"{path.stem}.png")
    for name in ("the_wave", "starry_night"):
        save_image(resize_exact(load_image(EXAMPLES / "style" / f"{name}.jpg"), (48, 48)), folder / "styles" / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def client(weights):
    export_first(SETTINGS)   # workers' stores never export
    with connect(workers=2) as c:
        yield c


def _check_outputs(jobs, out_dir, iterations=SETTINGS.iterations):
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == sorted(j.output.name for j in jobs)   # each once, no temporary file left
    for job in jobs:
        assert load_image(job.output).shape == (36, 48, 3)
        held = read_settings(job.output)
        assert held["content_sha256"] == job.sources["content_sha256"]
        assert held["iterations"] == iterations


def test_batch_makes_each_picture_then_skips_them_all(client, inputs, tmp_path):
    jobs = make_jobs(expand([str(inputs / "contents")]), expand([str(inputs / "styles" / "*.png")]), SETTINGS, tmp_path)
    assert [j.output.name for j in jobs][:2] == ["astronaut__starry_night.png", "astronaut__the_wave.png"]
    results = run_batch(client, jobs, quiet=True)
    assert [r.status for r in results] == ["done"] * 6, summary(results)
    _check_outputs(jobs, tmp_path)
    # two workers shared the work, each with its own engine
    assert len(client.scheduler_info()["workers"]) == 2
    again = run_batch(client, jobs, quiet=True)
    assert [r.status for r in again] == ["skipped"] * 6
    # other settings are other pictures: not skipped
    changed = make_jobs(expand([str(inputs / "contents" / "coffee.png")]), expand([str(inputs / "styles")]),
                        SETTINGS.replace(iterations=2), tmp_path)
    assert [r.status for r in run_batch(client, changed, quiet=True)] == ["done"] * 2


def test_a_worker_killed_mid_batch_loses_nothing(client, inputs, tmp_path):
    settings = SETTINGS.replace(iterations=12)
    jobs = make_jobs(expand([str(inputs / "contents")]), expand([str(inputs / "styles")]), settings, tmp_path)
    pids = client.run(os.getpid)
    killed = []

    def kill_one(result):
        if not killed:  # the other worker is busy with its next picture now
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    results = run_batch(client, jobs, retries=2, quiet=True, on_result=kill_one)
    assert killed
    assert all(r.status in ("done", "skipped") for r in results), summary(results)
    _check_outputs(jobs, tmp_path, iterations=12)


def test_batch_cli_bad_input_is_one_line(tmp_path, capsys):
    import cli
    assert cli.main(["batch", str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.jpg: no such file or folder" in err
    assert cli.main(["batch", str(tmp_path), "--step-engine", "tf", "-q"]) == 2

"""Batch on a real Dask LocalCluster of two worker processes on loopback, the real engine and
weights, real files: every picture made once, a re-run skips them all, a worker killed mid-run
loses nothing and leaves nothing half-written."""
import contextlib
import os
import signal
import threading
import time

import pytest

pytest.importorskip("distributed")

from batch.cluster import connect  # noqa: E402
from batch.jobs import expand, is_done, make_jobs  # noqa: E402
from batch.run import export_first, run_batch, summary  # noqa: E402
from engine.images import load_image, resize_exact, save_image  # noqa: E402
from engine.metadata import read_settings  # noqa: E402
from engine.settings import Settings  # noqa: E402

from conftest import EXAMPLES  # noqa: E402

SETTINGS = Settings(size=48, iterations=3, scales=1, targets="ort", step_engine="ort")
WEIGHTS = ""   # the weights' sha256, once loaded (the client fixture)


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
    global WEIGHTS
    WEIGHTS = weights.sha256
    export_first(SETTINGS, weights)   # workers' stores never export
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


def _executing(dask_worker=None):
    """On a worker: its pid and the tasks it is computing now."""
    return os.getpid(), [str(ts.key) for ts in dask_worker.state.executing]


def _kill_while_computing(client, out_dir, killed, inodes, stop):
    """Watch the batch: SIGKILL the first worker seen computing a picture (not an idle one), and
    record every inode each output has had (a second write of a picture is a second inode)."""
    while not stop.is_set():
        for path in out_dir.glob("*.png"):
            with contextlib.suppress(FileNotFoundError):
                inodes.setdefault(path.name, set()).add(path.stat().st_ino)
        if not killed:
            for pid, keys in client.run(_executing).values():
                if keys:
                    time.sleep(0.3)   # well inside its picture
                    os.kill(pid, signal.SIGKILL)
                    killed.append((pid, keys[0]))
                    break
        time.sleep(0.01)


@pytest.mark.parametrize("retries", [2, 0])
def test_a_worker_killed_while_computing_is_retried_as_retries_says(client, inputs, tmp_path, retries):
    settings = SETTINGS.replace(iterations=30)   # a second or so a picture: long enough to die in
    jobs = make_jobs(expand([str(inputs / "contents" / n) for n in ("astronaut.png", "coffee.png")]),
                     expand([str(inputs / "styles")]), settings, tmp_path, weights=WEIGHTS)
    killed, inodes, stop = [], {}, threading.Event()
    watcher = threading.Thread(target=_kill_while_computing, args=(client, tmp_path, killed, inodes, stop))
    watcher.start()
    try:
        results = run_batch(client, jobs, retries=retries, quiet=True)
    finally:
        stop.set()
        watcher.join()
    assert killed, "no worker was seen computing"
    victim = next(j for j in jobs if f"nst-{j.output.name}-" in killed[0][1])
    by_output = {r.output: r for r in results}
    if retries:
        assert all(r.status == "done" for r in results), summary(results)
        _check_outputs(jobs, tmp_path, iterations=30)
        # each picture written once: its file never replaced by a second write
        assert all(len(ids) == 1 for ids in inodes.values()), inodes
    else:   # no retries: the picture whose worker died is failed, in one line; the others are made
        failed = by_output[str(victim.output)]
        assert failed.status == "failed" and failed.reason.startswith("its worker died while making it"), failed
        assert not victim.output.exists()
        assert all(r.status == "done" for r in results if r is not failed), summary(results)


def test_a_picture_made_with_other_weights_is_made_again(client, inputs, tmp_path):
    from dataclasses import replace
    jobs = make_jobs(expand([str(inputs / "contents" / "coffee.png")]),
                     expand([str(inputs / "styles" / "the_wave.png")]),
                     SETTINGS, tmp_path, weights=WEIGHTS)
    assert [r.status for r in run_batch(client, jobs, quiet=True)] == ["done"]
    assert read_settings(jobs[0].output)["weights_sha256"] == WEIGHTS
    assert is_done(jobs[0]) and not is_done(replace(jobs[0], weights="0" * 64))


def test_each_worker_plans_within_its_share_of_the_machine(client):
    from engine.memory import BUDGET_SHARE, available_mb
    shares = client.run(lambda: __import__("engine.memory", fromlist=["budget"]).budget().total_mb)
    assert len(shares) == 2
    # two workers on this machine: each about half of what one process alone would take
    assert all(0 < mb <= 0.6 * BUDGET_SHARE * available_mb() for mb in shares.values()), shares


def test_batch_cli_bad_input_is_one_line(tmp_path, capsys):
    import cli
    assert cli.main(["batch", str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.jpg: no such file or folder" in err
    assert cli.main(["batch", str(tmp_path), "--step-engine", "tf", "-q"]) == 2

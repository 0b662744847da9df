"""The studio under what its users and its machine do to it: crafted requests that would cost
gigabytes, a SIGKILL in the middle of a job and a restart, a stop, a disk that refuses a write,
and old jobs pruned. A real server (``cli.py serve`` on loopback), the real engine, real files."""
import io
import json
import struct
import time
import zlib

import pytest
import requests
from PIL import Image

pytest.importorskip("fastapi", reason="the studio needs the web extra")
from studio_server import ROOT, Server  # noqa: E402
from test_serve import LONG, one_line_error, photograph, png, run_until  # noqa: E402


def plain_png(width: int, height: int) -> bytes:
    """A black RGB PNG of any size, made row by row (an 8000x8000 one is 0.2 MB here, 192 MB decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row, body = zlib.compressobj(9), b"\0" * (1 + 3 * width), []
    for _ in range(height):
        body.append(packer.compress(row))
    body.append(packer.flush())
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", b"".join(body)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def server(tmp_path_factory, weights):
    s = Server(tmp_path_factory.mktemp("studio"), "--no-warm")
    yield s
    s.close()


@pytest.fixture(scope="module")
def huge():
    return plain_png(8000, 8000)


def crafted(huge):
    """The requests of issue 19 that cost the server gigabytes or a 500, each with what it must say."""
    yield ([("style", (f"p{i}.png", huge)) for i in range(16)], {}, 413,
           "the pictures of this job come to 1024.2 megapixels decoded; at most 64")
    yield ([("style", (f"p{i}.png", huge)) for i in range(20)], {}, 422,
           "style_blend cannot blend 20 style images; at most 16")
    yield ([("content", ("big.png", huge)), ("style", ("big.png", huge))], {}, 413, "128.0 megapixels")
    yield (None, {"settings": json.dumps({"style_scale": 1000})}, 422, "style_scale must be a positive number up to 4")
    yield (None, {"style_scale": "1000"}, 422, "style_scale must be a positive number up to 4")
    yield (None, {"settings": json.dumps({"style_layers": {"block1_conv1": "x"}})}, 422,
           "style_layers has a weight 'x' for block1_conv1 that is not a number")
    yield (None, {"settings": json.dumps({"style_layers": ["ab"]})}, 422,
           "style_layers has an unknown VGG19 layer 'ab'")
    yield (None, {"settings": '{"style_layers": {"block1_conv1": 1' + "0" * 400 + '}}'}, 422,
           "style_layers has a weight 1000000000")
    yield (None, {"settings": json.dumps({"iterations": 1e300})}, 422, "iterations must be a whole number, not 1e+300")


def test_crafted_requests_are_refused_at_once_without_costing_memory(server, huge):
    server.submit(iterations=1)   # the server's first job: its engine loaded, its memory settled
    assert server.wait(requests.get(server.url("/api/jobs"), timeout=10).json()[0]["id"])["state"] == "done"
    before = server.rss_mb()
    for files, fields, status, says in crafted(huge):
        begin = time.perf_counter()
        answer = server.submit(files=files, **fields)
        took = time.perf_counter() - begin
        assert says in one_line_error(answer, status)
        assert took < 1.0, (says, took)
    # 16 paintings of 192 MB each decoded cost 4.4 GB before: now nothing is decoded
    assert server.rss_mb() - before < 50, (before, server.rss_mb())
    assert requests.get(server.url("/api/jobs"), timeout=10).ok


def test_a_killed_server_keeps_finished_jobs_resumes_waiting_ones_and_marks_the_running_one(tmp_path, weights):
    first = Server(tmp_path / "data", "--no-warm")
    try:
        done = first.submit(iterations=2).json()
        assert first.wait(done["id"])["state"] == "done"
        picture = requests.get(first.url(f"/api/jobs/{done['id']}/image"), timeout=10).content
        running = first.submit(**LONG).json()
        run_until(first, running["id"], 2, previews=1)
        # waiting: an uploaded photograph and a bundled one, to be made after the restart
        waiting = [first.submit(files={"content": ("mine.jpg", photograph(90), "image/jpeg")}, iterations=2).json(),
                   first.submit(content_name="astronaut", iterations=2).json()]
        assert [w["state"] for w in waiting] == ["queued", "queued"]
        preview = requests.get(first.url(f"/api/jobs/{running['id']}/image"), timeout=10).content
    finally:
        first.close(kill=True)   # SIGKILL: no chance to record anything
    second = Server(tmp_path / "data", "--no-warm")
    try:
        assert second.job(done["id"])["state"] == "done"
        assert requests.get(second.url(f"/api/jobs/{done['id']}/image"), timeout=10).content == picture
        for job in waiting:   # resumed in their order, from their pictures kept on disk
            finished = second.wait(job["id"])
            assert finished["state"] == "done" and finished["sources"] == job["sources"], finished
        with Image.open(io.BytesIO(requests.get(second.url(f"/api/jobs/{waiting[0]['id']}/image"),
                                                timeout=10).content)) as img:
            assert img.size == (64, 43) and json.loads(img.text["nst.settings"])["content"] == "mine.jpg"
        crashed = second.job(running["id"])
        assert crashed["state"] == "interrupted" and "its last preview is kept" in crashed["error"], crashed
        assert crashed["preview"] == 1 and not crashed["result"]
        kept = requests.get(second.url(f"/api/jobs/{running['id']}/image"), timeout=10)
        assert kept.headers["content-type"] == "image/jpeg" and kept.content == preview
        assert [e for e, _ in second.events(running["id"])] == ["interrupted"]
        assert "only an interrupted job" in one_line_error(
            requests.post(second.url(f"/api/jobs/{done['id']}/rerun"), timeout=10), 409)
        # run again from the page: the same job, its pictures and settings kept
        again = requests.post(second.url(f"/api/jobs/{running['id']}/rerun"), timeout=10)
        assert again.status_code == 202 and again.json()["state"] in ("queued", "running"), again.text
        run_until(second, running["id"], 1)
        requests.post(second.url(f"/api/jobs/{running['id']}/cancel"), timeout=10)
        ended = second.wait(running["id"])
        assert ended["state"] == "cancelled" and ended["result"] and ended["sources"] == running["sources"]
        history = [j["id"] for j in requests.get(second.url("/api/jobs"), timeout=10).json()]
        assert history == [waiting[1]["id"], waiting[0]["id"], running["id"], done["id"]]
        assert not list((tmp_path / "data" / "inputs").iterdir())   # every job ended: no pictures kept for it
    finally:
        second.close()


def test_a_stopped_server_keeps_the_running_picture_and_the_line(tmp_path, weights):
    first = Server(tmp_path / "data", "--no-warm")
    try:
        running = first.submit(**LONG).json()
        run_until(first, running["id"], 1)
        waiting = first.submit(iterations=2).json()
        first.close()   # SIGTERM, as Ctrl-C: the evaluation in progress ends, its picture is kept
        assert first.process.returncode in (0, -15)
    finally:
        first.close(kill=True)
    second = Server(tmp_path / "data", "--no-warm")
    try:
        stopped = second.job(running["id"])
        assert stopped["state"] == "cancelled" and stopped["result"], stopped
        assert requests.get(second.url(f"/api/jobs/{running['id']}/image"), timeout=10).ok
        assert second.wait(waiting["id"])["state"] == "done"   # the line is taken up again
    finally:
        second.close()


def test_a_disk_that_refuses_a_write_fails_the_job_in_one_line_and_the_server_goes_on(tmp_path, weights):
    data = tmp_path / "data"
    # files of at most 96 kB: the noisy 256 px result (~190 kB) cannot be written, its small inputs can
    server = Server(data, "--no-warm", file_size=96 * 1024)
    try:
        small = {"content": ("small.png", png(Image.open(io.BytesIO(photograph(64))))),
                 "style": ("small.png", png(Image.open(io.BytesIO(photograph(64)))))}
        answer = server.submit(files=small, size=256, iterations=1, init_noise=1)
        assert answer.status_code == 202, answer.text
        failed = server.wait(answer.json()["id"])
        assert failed["state"] == "failed" and not failed["result"]
        assert failed["error"] == "the picture could not be written under --data: File too large", failed
        # a job whose own pictures cannot be kept is refused at once, leaving nothing
        noise = Image.effect_noise((400, 400), 120).convert("RGB")
        refused = server.submit(files={"content": ("noise.png", png(noise))}, size=256)
        assert one_line_error(refused, 507) == "the job's pictures could not be kept under --data: File too large"
        assert sorted(p.name for p in (data / "results").iterdir()) == []
        assert list((data / "inputs").iterdir()) == []
        # and the server still answers, and makes the next picture
        after = server.submit(files=small, iterations=1)
        assert server.wait(after.json()["id"])["state"] == "done"
        assert [j["state"] for j in requests.get(server.url("/api/jobs"), timeout=10).json()] == ["done", "failed"]
    finally:
        server.close()


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MB file system (tmpfs): its writes fail with ENOSPC when full, the job store's too.
    Mounting needs root (CAP_SYS_ADMIN): skipped elsewhere."""
    import subprocess
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small file system here (not root)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_full_disk_fails_the_job_in_one_line_and_the_server_goes_on(small_disk, weights):
    import os

    def free_kb():
        stats = os.statvfs(small_disk)
        return stats.f_bavail * stats.f_frsize // 1024

    small = {"content": ("small.png", png(Image.open(io.BytesIO(photograph(64))))),
             "style": ("small.png", png(Image.open(io.BytesIO(photograph(64)))))}
    server = Server(small_disk / "data", "--no-warm", log=small_disk.parent / "server.log")
    filler = small_disk / "filler"
    try:
        assert server.wait(server.submit(files=small, iterations=1).json()["id"])["state"] == "done"
        with open(filler, "wb") as f:   # all but 60 kB: a job's small inputs fit, its noisy 256 px result not
            f.write(b"\0" * ((free_kb() - 60) * 1024))
        answer = server.submit(files=small, size=256, iterations=1, init_noise=1)
        assert answer.status_code == 202, answer.text
        failed = server.wait(answer.json()["id"])
        assert failed["error"] == "the picture could not be written under --data: No space left on device", failed
        with open(filler, "ab") as f, pytest.raises(OSError):   # now nothing at all fits
            f.write(b"\0" * (4 << 20))
        assert one_line_error(server.submit(files=small, iterations=1), 507) == \
            "the job's pictures could not be kept under --data: No space left on device"
        assert requests.get(server.url("/api/jobs"), timeout=10).ok
        filler.unlink()   # space again: the next job is made
        assert server.wait(server.submit(files=small, iterations=1).json()["id"])["state"] == "done"
        assert [j["state"] for j in requests.get(server.url("/api/jobs"), timeout=10).json()] == \
            ["done", "failed", "done"]
        assert len(list((small_disk / "data" / "results").iterdir())) == 2   # no partial file
        assert "Traceback" not in (small_disk.parent / "server.log").read_text()
    finally:
        server.close()


def test_old_jobs_are_pruned_with_their_pictures(tmp_path, weights):
    server = Server(tmp_path / "data", "--no-warm", "--keep", "2")
    try:
        ids = []
        for _ in range(3):
            ids.append(server.submit(iterations=1).json()["id"])
            assert server.wait(ids[-1])["state"] == "done"
        assert [j["id"] for j in requests.get(server.url("/api/jobs"), timeout=10).json()] == ids[:0:-1]
        assert one_line_error(requests.get(server.url(f"/api/jobs/{ids[0]}"), timeout=10), 404)
        assert sorted(p.stem for p in (tmp_path / "data" / "results").iterdir()) == sorted(ids[1:])
    finally:
        server.close()


def test_serve_refuses_a_port_that_is_not_one(tmp_path):
    import subprocess
    import sys
    answer = subprocess.run([sys.executable, str(ROOT / "cli.py"), "serve", "--port", "70000", "--data",
                             str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert answer.returncode == 2 and "Traceback" not in answer.stderr
    assert answer.stderr.strip().splitlines()[-1] == \
        "nst serve: error: argument --port: 70000 is not a port: between 1 and 65535"

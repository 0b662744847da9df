"""The studio's API against a real server (``python cli.py serve`` on a free loopback port), the real
engine and real files: jobs, the order of their events, stop, the bounded line, restarts, and every
kind of bad request answered with one line of JSON."""
import io
import json
import socket
import subprocess
import sys

import numpy as np
import pytest
import requests
from PIL import Image

pytest.importorskip("fastapi", reason="the studio needs the web extra")
from studio_server import ROOT, Server  # noqa: E402

LONG = {"iterations": "2000"}   # a job that runs until it is stopped


@pytest.fixture(scope="module")
def server(tmp_path_factory, weights):   # weights: the suite's cached weights exist before the child looks
    s = Server(tmp_path_factory.mktemp("studio"), "--queue", "2")
    yield s
    s.close()


def png(image: Image.Image, **options) -> bytes:
    data = io.BytesIO()
    image.save(data, format=options.pop("format", "PNG"), **options)
    return data.getvalue()


def photograph(size: int = 96) -> bytes:
    with Image.open(ROOT / "examples" / "content" / "coffee.jpg") as img:
        img.thumbnail((size, size))
        return png(img.convert("RGB"), format="JPEG", quality=90)


def one_line_error(answer, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail and "Traceback" not in detail
    return detail


def run_until(server, job_id, evaluations: int, previews: int = 0):
    """Follow a job until it has done ``evaluations`` and shown ``previews``; the stream stays open
    for the rest."""
    stream = server.events(job_id)
    seen = []
    for event, job in stream:
        seen.append((event, job))
        if job["progress"].get("evaluations", 0) >= evaluations and job["preview"] >= previews:
            return stream, seen
    raise AssertionError(f"the job ended first: {seen[-1]}")


def test_a_job_runs_and_its_events_come_in_order(server):
    answer = server.submit(files={"content": ("photo.jpg", photograph(), "image/jpeg")},
                           style_name="the_wave.jpg", iterations=6, preserve_colors="true")
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["state"] in ("queued", "running") and answer.headers["location"] == f"/api/jobs/{job['id']}"
    assert job["settings"]["size"] == 64 and job["settings"]["preserve_colors"] == "luminance"
    assert job["sources"] == {"content": "photo.jpg", "style": ["style/the_wave.jpg"]}

    events = list(server.events(job["id"]))
    names = [e for e, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"progress"}, names
    counts = [j["progress"].get("evaluations", 0) for _, j in events]
    assert counts == sorted(counts) and counts[-1] == 6
    done = events[-1][1]
    assert done["result"] and done["error"] is None and server.job(job["id"])["state"] == "done"

    picture = requests.get(server.url(f"/api/jobs/{job['id']}/image"), timeout=10)
    assert picture.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(picture.content)) as img:
        assert max(img.size) == 64 and img.mode == "RGB"
        kept = json.loads(img.text["nst.settings"])
    assert kept["size"] == 64 and kept["iterations"] == 6 and kept["content"] == "photo.jpg"
    download = requests.get(server.url(f"/api/jobs/{job['id']}/image?download=true"), timeout=10)
    assert download.content == picture.content and "attachment" in download.headers["content-disposition"]
    assert job["id"] in [j["id"] for j in requests.get(server.url("/api/jobs"), timeout=10).json()]
    # a finished job's stream is its one last event
    assert [e for e, _ in server.events(job["id"])] == ["done"]


def test_stop_keeps_the_best_picture_so_far(server):
    job = server.submit(**LONG).json()
    stream, seen = run_until(server, job["id"], 2, previews=1)
    preview = requests.get(server.url(f"/api/jobs/{job['id']}/image"), timeout=10)
    assert preview.headers["content-type"] == "image/jpeg"   # a preview: light to make, never the result
    with Image.open(io.BytesIO(preview.content)) as img:
        assert max(img.size) == 64 and img.format == "JPEG"
    cancel = requests.post(server.url(f"/api/jobs/{job['id']}/cancel"), timeout=10)
    assert cancel.status_code == 200 and cancel.json()["stopping"]
    rest = list(stream)
    assert rest[-1][0] == "cancelled" and all(e == "progress" for e, _ in seen + rest[:-1])
    ended = rest[-1][1]
    assert ended["result"] and 2 <= ended["progress"]["evaluations"] < 2000
    picture = requests.get(server.url(f"/api/jobs/{job['id']}/image"), timeout=10)
    with Image.open(io.BytesIO(picture.content)) as img:
        assert max(img.size) == 64 and img.format == "PNG" and "nst.settings" in img.text
    assert "already cancelled" in one_line_error(
        requests.post(server.url(f"/api/jobs/{job['id']}/cancel"), timeout=10), 409)


def test_a_full_line_is_answered_429_with_retry_after(server):
    running = server.submit(**LONG).json()
    run_until(server, running["id"], 1)   # running: the line is empty again
    waiting = [server.submit(**LONG) for _ in range(2)]
    assert [w.status_code for w in waiting] == [202, 202]
    assert [w.json()["position"] for w in waiting] == [1, 2]
    full = server.submit(**LONG)
    assert "queue is full" in one_line_error(full, 429)
    assert int(full.headers["retry-after"]) >= 1
    # a waiting job leaves the line at once, with no picture; the one behind it moves up
    first = waiting[0].json()["id"]
    gone = requests.post(server.url(f"/api/jobs/{first}/cancel"), timeout=10).json()
    assert gone["state"] == "cancelled" and not gone["result"]
    assert server.job(waiting[1].json()["id"])["position"] == 1
    assert [e for e, _ in server.events(first)] == ["cancelled"]
    for job_id in (waiting[1].json()["id"], running["id"]):
        requests.post(server.url(f"/api/jobs/{job_id}/cancel"), timeout=10)
    assert server.wait(running["id"])["state"] == "cancelled"


def bomb() -> bytes:
    # 11000 x 11000 one-bit pixels: 121 megapixels in a file of a few kB
    return png(Image.new("1", (11000, 11000)))


BAD_FILES = {
    "empty": (lambda: b"", "holiday.png: the file is empty", 400),
    "truncated": (lambda: photograph()[:600], "holiday.png: the file is damaged or truncated", 400),
    "not an image": (lambda: b"name,value\nsize,64\n" * 20, "holiday.png: not an image", 400),
    # refused from its header, before it is decoded: more pixels than a job takes
    "decompression bomb": (bomb, "the pictures of this job come to 121.", 413),
}


@pytest.mark.parametrize("kind", BAD_FILES)
@pytest.mark.parametrize("field", ["content", "style"])
def test_a_bad_file_is_refused_with_one_line(server, kind, field):
    make, says, status = BAD_FILES[kind]
    before = len(requests.get(server.url("/api/jobs"), timeout=10).json())
    answer = server.submit(files={field: ("holiday.png", make(), "image/png")})
    detail = one_line_error(answer, status)
    assert detail.startswith(says), detail
    assert "/tmp" not in detail and "upload-" not in detail   # the server's own file names stay its own
    assert len(requests.get(server.url("/api/jobs"), timeout=10).json()) == before


def test_grey_16_bit_rgba_and_cmyk_files_are_converted_and_work(server):
    rng = np.random.default_rng(0)
    files = {
        "grey16.png": png(Image.fromarray((rng.random((72, 96)) * 65535).astype(np.uint16))),
        "rgba.png": png(Image.fromarray((rng.random((72, 96, 4)) * 255).astype(np.uint8), "RGBA")),
        "cmyk.jpg": png(Image.open(io.BytesIO(photograph())).convert("CMYK"), format="JPEG"),
    }
    assert Image.open(io.BytesIO(files["grey16.png"])).mode.startswith("I;16")
    for name, data in files.items():
        answer = server.submit(files={"content": (name, data), "style": (name, data)}, iterations=1)
        assert answer.status_code == 202, answer.text
        done = server.wait(answer.json()["id"])
        assert done["state"] == "done" and done["sources"] == {"content": name, "style": [name]}, done


def test_an_upload_over_the_limit_is_refused(server):
    answer = server.submit(files={"content": ("huge.png", b"\0" * (26 * 2 ** 20), "image/png")})
    assert "25 MB" in one_line_error(answer, 413)


BAD_SETTINGS = [
    ({"size": "0"}, "size must be between 1 and 4096, not 0"),
    ({"size": "5000"}, "size must be between 1 and 4096"),
    ({"size": "twelve"}, "size 'twelve' is not a whole number"),
    ({"size": "nan"}, "size 'nan' is not a whole number"),
    ({"iterations": "0"}, "iterations must be between 1 and 10000, not 0"),
    ({"iterations": "1e9"}, "iterations '1e9' is not a whole number"),
    ({"content_weight": "nan"}, "content_weight must be a non-negative number up to 1e+12, not nan"),
    ({"style_weight": "inf"}, "style_weight must be a non-negative number up to 1e+12, not inf"),
    ({"style_scale": "4", "size": "2048"}, "style_scale 4 makes the paintings 8192 px at size 2048; at most 4096"),
    ({"scales": "100"}, "scales must be between 1 and 8, not 100"),
    ({"tile": "30"}, "tile must be 0 (only as the memory limit needs) or a multiple of 16 between 64 and 4096"),
    ({"memory_limit": "-5"}, "memory_limit must be 0 (3/4 of the memory available) or between 256 and"),
    ({"scale_iterations": "5,x"}, "scale_iterations '5,x' is not a comma-separated list of whole numbers"),
    ({"style_layers": "block1_conv1:-1"}, "style_layers has a weight -1.0 for block1_conv1"),
    ({"style_layers": "block1_conv1,block1_conv1"}, "style_layers names block1_conv1 twice"),
    ({"jit": "maybe"}, "jit must be true or false, not 'maybe'"),
    ({"settings": json.dumps({"iterations": "6"})}, "iterations must be a whole number, not '6'"),
    ({"settings": json.dumps({"iterations": 6.5})}, "iterations must be a whole number, not 6.5"),
    ({"settings": json.dumps({"style_layers": ["block1_conv1", 2]})}, "style_layers must map VGG19 layer names"),
    ({"settings": json.dumps({"style_layers": {"block1_conv1": "1"}})}, "style_layers has a weight '1' for"),
    ({"settings": json.dumps({"scale_iterations": {"a": 1}})}, "scale_iterations must be a list of whole numbers"),
    ({"settings": json.dumps({"style_blend": [1, None]})}, "style_blend has None, which is not a number"),
    ({"settings": json.dumps({"optimizer": ["adam"]})}, "optimizer must be lbfgs or adam, not ['adam']"),
    ({"settings": json.dumps({"seed": 10 ** 40})}, "seed must be between 0 and 4294967295"),
    ({"settings": json.dumps([1, 2])}, "settings must be a JSON object"),
    ({"settings": json.dumps({"size": 64})}, "size is given twice: as a field and in settings"),
    ({"colour": "red"}, "colour is not a setting or a field of this form"),
    ({"step_engine": "gpu"}, "step_engine must be auto or tf or ort"),
    ({"preserve_colors": "sepia"}, "preserve_colors must be none or luminance or histogram, not 'sepia'"),
    ({"style_colors": "true", "preserve_colors": "luminance"}, "style_colors and preserve_colors pull the colours"),
    ({"content_weight": "-1"}, "content_weight must be a non-negative number"),
    ({"style_blend": "a,b"}, "style_blend 'a,b' is not a comma-separated list of numbers"),
    ({"style_blend": "1,2"}, "style_blend gives 2 weight(s) for 1 style image(s)"),
    ({"settings": json.dumps({"colour": "red"})}, "colour is not a setting"),
    ({"settings": "{nope"}, "settings is not a JSON object"),
    ({"init": "image"}, "init is 'image' but no init_image was given"),
    ({"content_name": "mona_lisa"}, "content_name 'mona_lisa' is not a bundled photograph"),
    ({"style_name": "guernica.jpg"}, "style_name 'guernica.jpg' is not a bundled painting"),
    ({"size": "20"}, "size 20 makes this picture 20x13 px; these layers need at least 16 px a side"),
]


@pytest.mark.parametrize("fields,says", BAD_SETTINGS, ids=[s for _, s in BAD_SETTINGS])
def test_bad_settings_are_refused_before_any_work(server, fields, says):
    before = len(requests.get(server.url("/api/jobs"), timeout=10).json())
    detail = one_line_error(server.submit(**fields), 422)
    assert says in detail, detail
    assert len(requests.get(server.url("/api/jobs"), timeout=10).json()) == before


def test_unknown_jobs_are_404(server):
    for path in ("/api/jobs/nope", "/api/jobs/nope/events", "/api/jobs/nope/image"):
        assert "no job nope" in one_line_error(requests.get(server.url(path), timeout=10), 404)
    assert one_line_error(requests.post(server.url("/api/jobs/nope/cancel"), timeout=10), 404)


def test_the_page_and_the_api_docs_are_served_from_this_machine(server):
    page = requests.get(server.url("/"), timeout=10)
    assert page.ok and "<title>nst studio</title>" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.replace('href="/docs"', "")   # no outside address in the page
    docs = requests.get(server.url("/docs"), timeout=10)
    assert docs.ok and "/docs/assets/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text
    assert requests.get(server.url("/docs/assets/swagger-ui-bundle.js"), timeout=10).ok
    paths = requests.get(server.url("/openapi.json"), timeout=10).json()["paths"]
    assert {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/events", "/api/jobs/{job_id}/image",
            "/api/jobs/{job_id}/cancel"} <= set(paths)


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        answer = subprocess.run([sys.executable, str(ROOT / "cli.py"), "serve", "--port", str(port), "--data",
                                 str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert answer.returncode == 1
    assert answer.stderr.strip() == f"nst: error: cannot listen on 127.0.0.1:{port}: Address already in use"


@pytest.mark.parametrize("fields", [{"preserve_colors": "histogram"}, {"style_colors": "true"}])
def test_the_colour_controls_reach_the_engine(server, fields):
    answer = server.submit(iterations=2, **fields)
    assert answer.status_code == 202, answer.text
    done = server.wait(answer.json()["id"])
    assert done["state"] == "done", done
    with Image.open(io.BytesIO(requests.get(server.url(f"/api/jobs/{done['id']}/image"), timeout=10).content)) as img:
        kept = json.loads(img.text["nst.settings"])
    assert all(str(kept[k]).lower() == v for k, v in fields.items()), kept


def test_every_setting_is_a_field_of_the_api_with_its_declared_bounds(server):
    from engine.settings import CONTROLS, IMAGE_INPUTS
    described = requests.get(server.url("/api/settings"), timeout=10).json()
    assert [c["name"] for c in described["settings"]] == list(CONTROLS)
    assert [i["name"] for i in described["images"]] == [i.name for i in IMAGE_INPUTS]
    body = requests.get(server.url("/openapi.json"), timeout=10).json()["paths"]["/api/jobs"]["post"]["requestBody"]
    fields = body["content"]["multipart/form-data"]["schema"]["properties"]
    assert set(CONTROLS) | {i.form for i in IMAGE_INPUTS} | {"content", "style", "content_name", "style_name"} \
        <= set(fields)
    assert fields["size"]["maximum"] == CONTROLS["size"].high and fields["optimizer"]["enum"] == ["lbfgs", "adam"]
    assert fields["tile"]["anyOf"][0] == {"const": 0} and fields["tile"]["anyOf"][1]["multipleOf"] == 16
    assert fields["mask"]["type"] == "array" and fields["mask"]["items"]["format"] == "binary"


def test_masks_and_a_starting_picture_reach_the_engine_and_the_metadata(server):
    mask = png(Image.new("L", (30, 20), 255))
    start = png(Image.new("RGB", (60, 40), "teal"))
    answer = server.submit(files=[("mask", ("left.png", mask)), ("mask", ("right.png", mask)),
                                  ("content_mask", ("keep.png", mask)), ("init_image", ("start.png", start))],
                           style_name=["starry_night", "the_wave"], iterations=2)
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["settings"]["init"] == "image"   # a starting picture given: the run starts from it
    assert job["sources"]["masks"] == ["left.png", "right.png"] and job["sources"]["init_image"] == "start.png"
    done = server.wait(job["id"])
    assert done["state"] == "done", done
    with Image.open(io.BytesIO(requests.get(server.url(f"/api/jobs/{job['id']}/image"), timeout=10).content)) as img:
        kept = json.loads(img.text["nst.settings"])
    assert kept["masks"] == ["left.png", "right.png"] and kept["content_mask"] == "keep.png"
    assert kept["init_image"] == "start.png" and kept["init"] == "image"


@pytest.mark.parametrize("files,fields,says", [
    ([("mask", ("one.png", b""))], {}, "one.png: the file is empty"),
    ([("mask", ("a.png", png(Image.new("L", (8, 8), 255))))], {"style_name": ["starry_night", "the_wave"]},
     "mask gives 1 mask(s) for 2 style image(s): one per style"),
    ([("mask", ("black.png", png(Image.new("L", (8, 8), 0))))], {}, "mask number 1 is black everywhere"),
    ([("init_image", ("s.png", png(Image.new("RGB", (8, 8)))))], {"init": "noise"}, "init_image is given, but init"),
    ([], {"content_name": "chelsea"}, None),
])
def test_bad_masks_and_starting_pictures_are_one_line(server, files, fields, says):
    if says is None:   # the control case: the same request without the bad part is accepted
        answer = server.submit(files=files or None, iterations=1, **fields)
        assert answer.status_code == 202, answer.text
        server.wait(answer.json()["id"])
        return
    status = 400 if "file is empty" in says else 422
    assert says in one_line_error(server.submit(files=files, **fields), status)


def test_a_form_field_that_should_be_a_file_or_text_is_refused(server):
    assert "mask must be a file" in one_line_error(server.submit(mask="white"), 422)
    assert "size must be text, not a file" in one_line_error(server.submit(files={"size": ("s.txt", b"64")}), 422)
    answer = requests.post(server.url("/api/jobs"), json={"size": 64}, timeout=10)
    assert "multipart/form-data" in one_line_error(answer, 415)

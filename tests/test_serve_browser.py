"""The studio page in a real browser (Debian's Chromium, driven by Playwright): upload a photograph,
press Go, watch the picture change, press Stop, download the result. Nothing the page asks for may
leave the machine."""
import io
import json
import time
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the studio needs the web extra")
from studio_server import ROOT, Server  # noqa: E402

CHROMIUM = Path("/usr/lib/chromium/chromium-headless-shell")   # the binary, not /usr/bin's wrapper
pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(),
                                reason=f"no {CHROMIUM} (apt-get install chromium-headless-shell)")
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(tmp_path_factory, weights):
    s = Server(tmp_path_factory.mktemp("studio-browser"))
    yield s
    s.close()


@pytest.fixture
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            # the resolver rule: without it Chromium looks up Google's update and autofill hosts
            args=["--no-sandbox", "--disable-dev-shm-usage",
                  "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"])
        context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.requests = []
        page.on("request", lambda r: page.requests.append(r.url))
        yield page
        browser.close()


def test_upload_go_watch_stop_and_download(server, page, tmp_path):
    expect = sync_api.expect
    photo = tmp_path / "harbour.jpg"
    with Image.open(ROOT / "examples" / "content" / "astronaut.jpg") as img:
        img.resize((96, 96)).save(photo, quality=90)
    painting = tmp_path / "my_painting.png"
    with Image.open(ROOT / "examples" / "style" / "the_wave.jpg") as img:
        img.resize((96, 64)).convert("RGBA").save(painting)

    page.goto(server.base + "/")
    expect(page.locator("#paintings .painting")).to_have_count(4)   # the bundled paintings, listed by the API
    page.set_input_files("#content-file", str(photo))
    page.set_input_files("#style-files", str(painting))   # blended with the bundled Starry Night, ticked
    page.locator("#uploaded-paintings .painting input[type=number]").fill("0.5")
    page.fill("#size", "96")
    page.fill("#scales", "1")
    page.fill("#iterations", "3000")   # runs until stopped
    # count the pictures the page shows, whatever the pace of its events
    page.evaluate("""window.shown = [];
        new MutationObserver(() => window.shown.push(document.getElementById('preview').src))
            .observe(document.getElementById('preview'), {attributes: true, attributeFilter: ['src']});""")
    page.click("#go")

    # the picture forms: at least two previews one after the other
    # (polled from here: the page's CSP forbids the string evaluation wait_for_function uses)
    deadline = time.monotonic() + 30
    while len(set(page.evaluate("window.shown"))) < 2:
        assert time.monotonic() < deadline, page.evaluate("window.shown")
        page.wait_for_timeout(100)
    expect(page.locator("#stats")).to_contain_text("evaluations/s")
    assert page.evaluate("document.getElementById('bar').value") > 0

    page.click("#stop")
    download_link = page.locator("#download")
    expect(download_link).to_be_visible(timeout=30_000)
    expect(page.locator("#message")).to_have_text("stopped: the best picture so far")
    expect(page.locator("#history li")).to_have_count(1, timeout=10_000)
    with page.expect_download() as caught:
        download_link.click()
    saved = tmp_path / "result.png"
    caught.value.save_as(saved)
    with Image.open(saved) as img:
        assert img.size == (96, 96)
        kept = json.loads(img.text["nst.settings"])
    assert kept["content"] == "harbour.jpg" and kept["style"] == ["style/starry_night.jpg", "my_painting.png"]
    assert kept["style_blend"] == [1.0, 0.5]

    outside = [u for u in page.requests if not u.startswith((server.base + "/", "blob:", "data:"))]
    assert not outside, outside


def test_a_bad_file_shows_its_one_line_on_the_page(server, page, tmp_path):
    broken = tmp_path / "broken.jpg"
    data = io.BytesIO()
    Image.new("RGB", (80, 60), "teal").save(data, format="JPEG")
    broken.write_bytes(data.getvalue()[:300])
    page.goto(server.base + "/")
    expect = sync_api.expect
    expect(page.locator("#content-name option")).to_have_count(3)
    page.set_input_files("#content-file", str(broken))
    page.click("#go")
    message = page.locator("#message")
    expect(message).to_have_class("error")
    expect(message).to_contain_text("broken.jpg: the file is damaged or truncated")
    expect(page.locator("#go")).to_be_enabled()


def test_the_api_docs_render_from_this_machine(server, page):
    page.goto(server.base + "/docs")
    sync_api.expect(page.locator(".opblock-summary-path").first).to_be_visible(timeout=20_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/jobs/{job_id}/events" in p.replace("\u200b", "") for p in paths), paths
    outside = [u for u in page.requests if not u.startswith((server.base + "/", "blob:", "data:"))]
    assert not outside, outside


def test_the_page_has_a_control_for_every_setting_and_picture_the_engine_declares(server, page):
    from engine.settings import CONTROLS, IMAGE_INPUTS
    page.goto(server.base + "/")
    sync_api.expect(page.locator("#paintings .painting")).to_have_count(4)
    for name, control in CONTROLS.items():   # the page is built from the declarations: none can be missing
        controls = page.locator(f"[name={name}]")
        assert controls.count() == (1 if control.page else 0), name
    assert not CONTROLS["style_blend"].page   # each painting's weight box makes it
    for image in IMAGE_INPUTS:   # masks in every painting's row; the photograph's own once
        assert page.locator(f"[data-image={image.name}]").count() == (4 if image.per_style else 1), image.name


def _drag(page, start, end):
    """A drag across the photograph, from and to fractions of its width and height."""
    canvas = page.locator("#regions")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + start[0] * box["width"], box["y"] + start[1] * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + end[0] * box["width"], box["y"] + end[1] * box["height"], steps=4)
    page.mouse.up()


def _region(name):
    """``region-X0-Y0-X1-Y1.png`` (percent of the photograph) -> the four numbers."""
    assert name.startswith("region-") and name.endswith(".png"), name
    return [int(v) for v in name[len("region-"):-len(".png")].split("-")]


def test_a_masked_job_made_on_the_page(server, page, tmp_path):
    """Two paintings placed by a rectangle drawn for one (the other takes the rest), a rectangle of
    the photograph kept, luminance colours and tiles: every one reaches the engine and the result's
    metadata."""
    expect = sync_api.expect
    page.goto(server.base + "/")
    expect(page.locator("#paintings .painting")).to_have_count(4)
    for _ in range(100):   # the photograph loaded: its size is the masks' shape
        if page.evaluate("document.getElementById('content-thumb').naturalWidth") > 0:
            break
        page.wait_for_timeout(50)
    page.fill("#size", "96")
    page.fill("#scales", "1")
    page.fill("#iterations", "4")
    page.select_option("#preserve-colors", "luminance")
    page.locator("#tile").evaluate("e => e.closest('details').open = true")
    page.fill("#tile", "64")
    starry = page.locator('#paintings .painting[data-name="starry_night.jpg"]')
    wave = page.locator('#paintings .painting[data-name="the_wave.jpg"]')
    wave.locator(".line input[type=checkbox]").check()
    wave.locator(".line input[type=number]").fill("2")
    starry.locator("[data-image=masks] select").select_option("region")
    expect(page.locator("#draw-hint")).to_be_visible()
    _drag(page, (0.10, 0.10), (0.50, 0.90))
    page.locator("[data-image=content_mask] select").select_option("region")
    _drag(page, (0.60, 0.20), (0.90, 0.80))
    expect(page.locator("#draw-hint")).to_be_hidden()
    page.click("#go")
    expect(page.locator("#message")).to_contain_text("done in", timeout=120_000)
    download = page.locator("#download")
    expect(download).to_be_visible()
    with page.expect_download() as caught:
        download.click()
    saved = tmp_path / "masked.png"
    caught.value.save_as(saved)
    with Image.open(saved) as img:
        assert img.size == (96, 64)
        kept = json.loads(img.text["nst.settings"])
        step = img.text["nst.step"]
    assert kept["style"] == ["style/starry_night.jpg", "style/the_wave.jpg"] and kept["style_blend"] == [1.0, 2.0]
    drawn, rest = kept["masks"]
    assert rest == "rest-of-picture.png"
    for got, want in ((_region(drawn), [10, 10, 50, 90]), (_region(kept["content_mask"]), [60, 20, 90, 80])):
        assert all(abs(g - w) <= 2 for g, w in zip(got, want)), (got, want)
    assert kept["preserve_colors"] == "luminance" and kept["tile"] == 64 and "tiles of 64 px" in step
    assert kept["size"] == 96 and kept["iterations"] == 4 and kept["step_engine"] == "auto"
    outside = [u for u in page.requests if not u.startswith((server.base + "/", "blob:", "data:"))]
    assert not outside, outside


def test_a_setting_the_server_refuses_shows_its_one_line(server, page):
    page.goto(server.base + "/")
    sync_api.expect(page.locator("#paintings .painting")).to_have_count(4)
    page.locator("#tile").evaluate("e => e.closest('details').open = true")
    page.fill("#tile", "32")   # a multiple of 16 the browser lets through; the engine's bounds do not
    page.click("#go")
    message = page.locator("#message")
    sync_api.expect(message).to_have_class("error")
    sync_api.expect(message).to_have_text("tile must be 0 (only as the memory limit needs) or a multiple of 16 "
                                          "between 64 and 4096, not 32")
    sync_api.expect(page.locator("#go")).to_be_enabled()


def test_an_interrupted_job_runs_again_from_the_page(page, tmp_path, weights):
    import requests
    from test_serve import LONG, run_until
    expect = sync_api.expect
    first = Server(tmp_path / "data", "--no-warm")
    try:
        job = first.submit(**LONG).json()
        run_until(first, job["id"], 1, previews=1)
    finally:
        first.close(kill=True)   # the machine went down mid-job
    second = Server(tmp_path / "data", "--no-warm")
    try:
        page.goto(second.base + "/")
        again = page.locator("#history li button", has_text="Run again")
        expect(page.locator("#history li").first).to_contain_text("interrupted")
        again.click()
        expect(page.locator("#message")).to_contain_text("scale 1 of 1", timeout=30_000)
        page.click("#stop")
        expect(page.locator("#message")).to_have_text("stopped: the best picture so far", timeout=30_000)
        ran = requests.get(second.url(f"/api/jobs/{job['id']}"), timeout=10).json()
        assert ran["state"] == "cancelled" and ran["result"] and ran["sources"] == job["sources"]
    finally:
        second.close()

"""docs/studio.png: the studio page with a picture forming, taken in Debian's Chromium.

    NST_CACHE_DIR=~/.cache/nst-tests python scripts/studio_screenshot.py [docs/studio.png]

A server on a free loopback port with a data folder of its own; the page is driven as a person
would: a bundled photograph, two paintings, The Starry Night placed on a rectangle drawn over the
left of the photograph and The Great Wave taking the rest, Go, then the picture part-way (two small
pictures made first through the API fill the history)."""
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from bench.serve import Server, follow  # noqa: E402

CHROMIUM = "/usr/lib/chromium/chromium-headless-shell"


def main(out: str = str(ROOT / "docs" / "studio.png")) -> int:
    with tempfile.TemporaryDirectory() as data:
        server = Server(Path(data), threads=2)
        try:
            import requests
            for content, style in (("astronaut.jpg", "composition_vii.jpg"), ("coffee.jpg", "the_scream.jpg")):
                job = requests.post(server.base + "/api/jobs", timeout=60, data={
                    "content_name": content, "style_name": style, "size": "192", "scales": "1",
                    "iterations": "30", "step_engine": "ort"}).json()
                for _ in follow(server.base, job["id"]):   # earlier pictures, for the history
                    pass
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                    "--no-sandbox", "--disable-dev-shm-usage",
                    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(server.base + "/")
                expect(page.locator("#paintings .painting")).to_have_count(4)
                page.select_option("#content-name", "chelsea.jpg")
                rows = page.locator("#paintings .painting")
                wave = rows.filter(has_text="the wave")
                wave.locator("input[type=checkbox]").check()
                rows.filter(has_text="starry night").locator("[data-image=masks] select").select_option("region")
                canvas = page.locator("#regions")
                box = canvas.bounding_box()
                page.mouse.move(box["x"] + 2, box["y"] + 2)
                page.mouse.down()
                page.mouse.move(box["x"] + 0.55 * box["width"], box["y"] + box["height"] - 2, steps=5)
                page.mouse.up()
                page.fill("#size", "384")
                page.fill("#scales", "2")
                page.fill("#iterations", "40")
                page.click("#go")
                deadline = time.monotonic() + 300
                while page.locator("#bar").evaluate("b => b.max > 1 ? b.value / b.max : 0") < 0.7:
                    if time.monotonic() > deadline:
                        raise SystemExit("the job did not get far enough in 5 minutes")
                    time.sleep(0.5)
                page.wait_for_timeout(1200)   # the preview of that moment loaded
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=out)   # the photograph, the paintings and the picture: the page's top
                page.click("#stop")
                expect(page.locator("#download")).to_be_visible(timeout=60_000)
                browser.close()
        finally:
            server.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

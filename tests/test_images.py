import io

import numpy as np
import pytest
from PIL import Image

from engine.images import ImageError, load_image, save_image


def _gradient(h=40, w=60):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4 % 256, y * 6 % 256, (x + y) * 2 % 256], -1).astype(np.uint8)


@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "tiff"])
def test_reads_common_formats(tmp_path, ext):
    rgb = _gradient()
    path = tmp_path / f"image.{ext}"
    Image.fromarray(rgb).save(path, quality=100) if ext in ("jpg", "webp") else Image.fromarray(rgb).save(path)
    out = load_image(path)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    tolerance = 0 if ext in ("png", "tiff") else 40
    assert np.abs(out.astype(int) - rgb).max() <= tolerance


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(_gradient(40, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").shape == (60, 40, 3)


def test_palette_grayscale_rgba_cmyk(tmp_path):
    rgb = _gradient()
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (40, 60, 3)
    Image.fromarray(rgb).convert("L").save(tmp_path / "l.png")
    gray = load_image(tmp_path / "l.png")
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    rgba = np.dstack([rgb, np.zeros((40, 60), np.uint8)])
    rgba[:, :30, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert (out[:, 30:] == 255).all()                 # transparent shows as white
    np.testing.assert_array_equal(out[:, :30], rgb[:, :30])
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    cmyk = load_image(tmp_path / "c.jpg")
    assert np.abs(cmyk.astype(int) - rgb).mean() < 8


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    values = np.linspace(0, 65535, 64 * 4).astype(np.uint16).reshape(4, 64)
    Image.fromarray(values).save(tmp_path / "g16.png")
    out = load_image(tmp_path / "g16.png")
    assert out[..., 0].max() == 255 and out[..., 0].min() == 0
    np.testing.assert_allclose(out[0, :, 0], np.round(values[0] / 257.0), atol=1)
    assert len(np.unique(out)) > 60  # a ramp, not a clipped step


def test_bad_files_have_one_line_errors(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image at all")
    buf = io.BytesIO()
    Image.fromarray(_gradient(200, 200)).save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    Image.new("1", (12000, 12000)).save(tmp_path / "bomb.png")
    cases = {"empty.png": "empty", "text.png": "not an image", "cut.png": "truncated",
             "bomb.png": "too large", "missing.png": "no such file"}
    for name, words in cases.items():
        with pytest.raises(ImageError, match=words) as info:
            load_image(tmp_path / name)
        assert "\n" not in str(info.value)


def test_save_is_atomic_and_keeps_metadata(tmp_path):
    path = save_image(np.full((8, 8, 3), 0.5, np.float32), tmp_path / "out.png", {"nst.settings": '{"a": 1}'})
    with Image.open(path) as img:
        assert img.text["nst.settings"] == '{"a": 1}' and img.getpixel((0, 0)) == (128, 128, 128)
    with pytest.raises(ImageError, match="does not exist"):
        save_image(np.zeros((8, 8, 3)), tmp_path / "nowhere" / "out.png")
    with pytest.raises(ImageError, match="unsupported output type"):
        save_image(np.zeros((8, 8, 3)), tmp_path / "out.gif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_settings_read_back_from_a_picture_and_not_from_other_files(tmp_path):
    from types import SimpleNamespace

    from engine.metadata import picture_metadata, read_settings
    outcome = SimpleNamespace(settings={"size": 64}, targets="t", step="s", weights="w")
    path = save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "a.png", picture_metadata(outcome, content="c.jpg"))
    assert read_settings(path) == {"size": 64, "content": "c.jpg"}
    (tmp_path / "cut.png").write_bytes(path.read_bytes()[:40])
    save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "plain.png")
    assert [read_settings(tmp_path / n) for n in ("cut.png", "plain.png", "none.png")] == [None, None, None]


def test_pictures_read_in_threads_leave_the_warning_filters_as_they_were(tmp_path):
    # the studio decodes several uploads at once: a filter swapped in by one read and restored by
    # another would stay for good, and every later header read of a large picture would then fail
    import threading
    import warnings

    from engine.images import header_pixels
    path = tmp_path / "p.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(path)
    before = list(warnings.filters)

    def read():
        for _ in range(60):
            assert load_image(path).shape == (256, 256, 3)
            assert header_pixels(path) == 256 * 256

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert warnings.filters == before
    assert header_pixels(io.BytesIO(b"not an image")) is None

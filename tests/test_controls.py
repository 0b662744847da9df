"""The controls artists ask for: masks (spatial control), colour transfer, the scale schedule."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.settings import Settings, SettingsError
from engine.stylizer import Stylizer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SMALL = dict(size=96, scales=1, iterations=30)


@pytest.fixture(scope="module")
def stylizer(weights):
    return Stylizer(weights, provider="cpu")


@pytest.fixture(scope="module")
def scream():
    from engine.images import load_image
    return load_image(EXAMPLES / "style" / "the_scream.jpg")


def _halves(width: int, height: int = 64):
    left = np.zeros((height, width), np.uint8)
    left[:, :width // 2] = 255
    return left, 255 - left


def _blue_minus_red(image: np.ndarray) -> float:
    return float(image[..., 2].astype(np.float32).mean() - image[..., 0].astype(np.float32).mean())


def test_masked_gram_is_the_gram_of_its_region():
    from engine.tf.losses import gram_matrix, masked_gram_matrix
    from models.keras_vgg19 import tf
    rng = np.random.default_rng(0)
    features = rng.random((1, 6, 8, 5), dtype=np.float32)
    masks = np.zeros((2, 6, 8, 1), np.float32)
    masks[0, :, :3], masks[1, :, 3:] = 1, 1
    grams = masked_gram_matrix(tf.constant(features), tf.constant(masks)).numpy()
    for region, columns in enumerate((slice(0, 3), slice(3, 8))):
        expected = gram_matrix(tf.constant(features[:, :, columns])).numpy()[0]
        np.testing.assert_allclose(grams[region], expected, rtol=1e-5)


@pytest.mark.parametrize("shape", [(64, 96), (67, 93), (37, 131)])
def test_masks_reach_every_layer_at_its_resolution(weights, shape):
    from engine.masks import layer_masks
    from engine.spec import DEFAULT_LAYERS, FeatureSpec
    from engine.tf.backend import TfFeatures
    features = TfFeatures(FeatureSpec(weights.sha256), weights)(np.zeros((1, *shape, 3), np.float32))
    masks = layer_masks(np.ones((2, *shape), np.float32), DEFAULT_LAYERS)
    assert {n: m.shape[1:3] for n, m in masks.items()} == {n: f.shape[1:3] for n, f in features.items()}


@pytest.mark.parametrize("engine", ["tf", "ort"])
def test_each_style_stays_in_its_region(stylizer, content_image, style_image, scream, engine):
    """The Starry Night (blue) on the left, The Scream (orange) on the right."""
    left, right = _halves(96)
    settings = Settings(**SMALL, style_weight=10.0, step_engine=engine)
    out = stylizer.run(content_image, [style_image, scream], settings, masks=[left, right]).image
    swapped = stylizer.run(content_image, [style_image, scream], settings, masks=[right, left]).image
    assert out.shape == (64, 96, 3)
    split = lambda image: _blue_minus_red(image[:, :48]) - _blue_minus_red(image[:, 48:])  # noqa: E731
    assert split(out) > 15 and split(swapped) < -15, (split(out), split(swapped))


def test_the_content_mask_keeps_the_content_where_it_is_white(stylizer, content_image, style_image):
    """The content layer (block5_conv2) sees the whole of a 96 px picture, so the mask moves the
    balance rather than drawing a line: the free half changes more than without the mask."""
    from engine.images import resize_exact
    keep, _ = _halves(96)
    settings = Settings(**SMALL, content_weight=1e6)
    original = resize_exact(content_image, (64, 96)).astype(np.float32)
    change = {}
    for name, mask in (("masked", keep), ("plain", None)):
        out = stylizer.run(content_image, [style_image], settings, content_mask=mask).image.astype(np.float32)
        columns = np.abs(out - original).mean(axis=(0, 2))
        change[name] = (columns[:48].mean(), columns[48:].mean())
    assert change["masked"][1] > change["plain"][1] + 3, change
    assert change["masked"][1] / change["masked"][0] > change["plain"][1] / change["plain"][0] + 0.15, change


def test_histogram_colors_and_style_colors_pull_the_palette_opposite_ways(stylizer, content_image, style_image):
    """Chelsea (warm) in The Starry Night (blue): histogram matching keeps the picture warm, style
    colours make it bluer than a plain run."""
    plain = stylizer.run(content_image, [style_image], Settings(**SMALL)).image
    kept = stylizer.run(content_image, [style_image], Settings(**SMALL, preserve_colors="histogram")).image
    taken = stylizer.run(content_image, [style_image], Settings(**SMALL, style_colors=True)).image
    assert _blue_minus_red(kept) < _blue_minus_red(plain) - 10 < _blue_minus_red(taken) - 20, \
        (_blue_minus_red(kept), _blue_minus_red(plain), _blue_minus_red(taken))


def test_match_colors_gives_the_asked_statistics(content_image, style_image):
    from engine.colors import color_statistics, match_colors
    mean, covariance = color_statistics(style_image)
    out_mean, out_cov = color_statistics(match_colors(content_image, mean, covariance))
    before = np.linalg.norm(color_statistics(content_image)[1] - covariance) / np.linalg.norm(covariance)
    after = np.linalg.norm(out_cov - covariance) / np.linalg.norm(covariance)
    np.testing.assert_allclose(out_mean, mean, atol=0.012)
    assert after < 0.2 and after < before / 3, (before, after)   # not exact: pixels are clipped to [0, 1]


def test_colour_and_schedule_settings():
    assert Settings(preserve_colors=True).preserve_colors == "luminance"      # earlier versions' flag
    assert Settings.from_dict({"preserve_colors": False}).preserve_colors == "none"
    with pytest.raises(SettingsError, match="opposite"):
        Settings(preserve_colors="histogram", style_colors=True)
    with pytest.raises(SettingsError) as error:
        Settings(size=512, scales=3, min_size=256, scale_iterations=(10, 20))
    assert error.value.field == "scale_iterations"
    assert Settings(size=512, scales=3, min_size=256, scale_iterations=(30, 20, 10)).schedule() == \
        [(256, 30), (362, 20), (512, 10)]


def _cli(*args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), "stylize", "-q", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_bad_masks_are_one_line_errors_and_write_nothing(tmp_path):
    Image.new("L", (30, 20), 0).save(tmp_path / "black.png")
    Image.new("L", (30, 20), 255).save(tmp_path / "white.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    styles = [str(EXAMPLES / "style" / "starry_night.jpg"), str(EXAMPLES / "style" / "the_scream.jpg")]
    common = ["--size", "48", "--iterations", "1", "--style", *styles, "-o", "out.png"]
    cases = {("--mask", "white.png"): (2, "--mask gives 1 mask(s) for 2 style image(s)"),
             ("--mask", "white.png", "broken.png"): (1, "broken.png: "),
             ("--mask", "white.png", "black.png"): (2, "--mask number 2 is black everywhere"),
             ("--content-mask", "missing.png"): (1, "missing.png: no such file")}
    for flags, (status, message) in cases.items():
        result = _cli(*common, *flags, cwd=tmp_path)
        assert result.returncode == status and message in result.stderr, (flags, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert not (tmp_path / "out.png").exists()


def test_a_mask_of_another_size_is_resized(tmp_path):
    Image.new("L", (7, 5), 255).save(tmp_path / "small.png")
    result = _cli("--size", "48", "--iterations", "2", "--mask", "small.png", "--content-mask", "small.png",
                  "-o", "out.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "out.png") as img:
        assert img.size == (48, 32) and "small.png" in img.text["nst.settings"]

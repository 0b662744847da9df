"""Pictures larger than memory: tiles whose cores partition the picture, Grams from tiles, a tiled
step that agrees with the whole one, and the memory limit that chooses them or refuses a run."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.settings import Settings, SettingsError
from engine.stylizer import Stylizer
from engine.tiles import ALIGN, boxes, choose_tile, estimate_mb

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stylizer(weights):
    return Stylizer(weights, provider="cpu")


@pytest.mark.parametrize("shape,tile,offset", [((120, 160), 128, (16, 32)), ((341, 512), 256, (0, 0)),
                                               ((300, 97), 256, (48, 112))])
def test_tile_cores_cover_the_picture_once(shape, tile, offset):
    seen = np.zeros(shape, np.int32)
    for (cy0, cy1, cx0, cx1), (ty0, ty1, tx0, tx1) in boxes(shape, tile, offset):
        seen[cy0:cy1, cx0:cx1] += 1
        assert 0 <= ty0 <= cy0 < cy1 <= ty1 <= shape[0] and 0 <= tx0 <= cx0 < cx1 <= tx1 <= shape[1]
        assert ty1 - ty0 <= tile and tx1 - tx0 <= tile
        assert all(edge % ALIGN == 0 or edge in shape for edge in (ty0, tx0, cy0, cx0))
    assert (seen == 1).all()


def test_grams_from_tiles_and_a_tiled_step_agree_with_the_whole_picture(stylizer, content_image, style_image):
    from engine.images import as_float, resize_exact, resize_longest
    from engine.targets import Targets, style_grams
    from engine.tiles import TiledStep, tiled_grams
    settings = Settings(size=384, scales=1, step_engine="ort")
    plan = stylizer.plan(settings, content_image.shape)
    step, features = stylizer.step(plan), stylizer._feature_backend("ort", plan.feature_spec, plan.feature_model)
    style = as_float(resize_longest(style_image, 384))
    whole, tiled = style_grams(features, style, settings.style_layers), tiled_grams(features, style,
                                                                                   settings.style_layers, 256)
    for n in settings.style_layers:   # the margin covers what each layer sees, to block 4 exactly
        assert np.linalg.norm(tiled[n] - whole[n]) <= (1e-3 if n != "block5_conv1" else 1e-2) * np.linalg.norm(whole[n])
    shape = plan.shapes[0]
    content = as_float(resize_exact(content_image, shape))
    targets = Targets(shape, whole, {n: features(content[None])[n] for n in settings.content_layers},
                      settings.style_layers, settings.content_layers, (1e5, 1.0, 10.0), content_image=content)
    x = np.clip(content[None] + np.random.default_rng(0).normal(0, 0.1, (1, *shape, 3)), 0, 1).astype(np.float32)
    step.bind_targets(targets)
    loss, grad, _ = step(x)
    in_tiles = TiledStep(step, features, tile=256)
    in_tiles.bind_targets(targets)
    tiled_loss, tiled_grad, parts = in_tiles(x)
    cosine = float((grad * tiled_grad).sum() / np.linalg.norm(grad) / np.linalg.norm(tiled_grad))
    assert cosine > 0.97 and abs(tiled_loss / loss - 1) < 0.15, (cosine, tiled_loss, loss)


def test_the_memory_limit_chooses_tiles_or_refuses_with_a_size_that_fits(stylizer, content_image):
    big = Settings(size=1024, scales=1, step_engine="ort")
    assert stylizer.plan(big.replace(memory_limit=100_000), content_image.shape).tiles == (0,)
    tile = stylizer.plan(big.replace(memory_limit=1500), content_image.shape).tiles[0]
    assert 256 <= tile < 1024 and tile % ALIGN == 0
    assert choose_tile("ort", 683, 1024, 1500) == tile and estimate_mb("ort", 683, 1024) > 1500
    with pytest.raises(SettingsError) as refused:
        stylizer.plan(big.replace(memory_limit=600), content_image.shape)
    assert refused.value.field == "size" and "--size" in refused.value.problem
    fits = int(refused.value.problem.rsplit("--size ", 1)[1].split()[0])
    assert 16 < fits < 1024
    stylizer.plan(big.replace(memory_limit=600, size=fits), content_image.shape)   # and it does


@pytest.mark.parametrize("engine", ["ort", "tf"])
def test_a_run_in_tiles_lowers_the_cost_and_keeps_the_size(stylizer, content_image, style_image, engine):
    seen = []
    outcome = stylizer.run(content_image, [style_image], Settings(size=160, scales=1, iterations=4, tile=128,
                                                                  step_engine=engine, optimizer="adam", jit=False),
                           callback=lambda p: seen.append(p.loss))
    assert outcome.image.shape == (107, 160, 3) and "tiles of 128 px" in outcome.step
    assert seen[-1] < seen[0]


def test_adam_returns_the_average_of_its_iterates_and_goes_on_across_scales(stylizer, content_image, style_image):
    """At a step size that makes Adam circle the minimum, the average of its iterates is nearer."""
    from engine.optimize import adam
    target = np.random.default_rng(0).random((1, 8, 8, 3), dtype=np.float32) * 0.5 + 0.25
    f = lambda x: (float(((x - target) ** 2).sum()), 2 * (x - target), {})  # noqa: E731
    iterates = []
    averaged = adam(f, np.zeros_like(target), 60, lr=0.1, callback=lambda i, loss, parts, x, s: iterates.append(x))
    assert np.abs(averaged.image - target).mean() < 0.5 * np.abs(iterates[-1] - target).mean()
    going_on = adam(f, averaged.image, 5, lr=0.1, state=averaged.state)
    afresh = adam(f, averaged.image, 5, lr=0.1)
    assert going_on.state.t == 65 and afresh.state.t == 5 and not np.allclose(going_on.image, afresh.image)
    outcome = stylizer.run(content_image, [style_image], Settings(size=64, scales=2, min_size=48, iterations=3,
                                                                  optimizer="adam"))
    assert outcome.image.shape == (43, 64, 3) and outcome.iterations == 6


def test_cli_refuses_a_picture_over_the_memory_limit_before_any_work(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "stylize", "-q", "--size", "2048",
                             "--memory-limit", "500", "--step-engine", "ort", "-o", "out.png"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 2 and "--size " in result.stderr and "fits" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out.png").exists()

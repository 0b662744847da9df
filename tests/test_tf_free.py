"""The engine's ONNX Runtime half and the stylize loop import and run with TensorFlow blocked: what a
GPU machine that has only onnxruntime, numpy and Pillow runs with models exported elsewhere."""
import subprocess
import sys

from conftest import ROOT

BLOCK = """
import sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx', 'tf_keras'):
            raise ImportError(f'{name} is blocked in this test')
sys.meta_path.insert(0, _Blocked())
sys.path.insert(0, '.')
"""

RUN = """
import numpy as np
from engine import Settings, Stylizer
from engine.images import load_image
from engine.store import ArtifactStore
from engine.ort import backend, graph, step, winograd
content = load_image('examples/content/chelsea.jpg')
style = load_image('examples/style/starry_night.jpg')
stylizer = Stylizer(provider='cpu', threads=1, store=ArtifactStore(exports=False))
outcome = stylizer.run(content, [style], Settings(size=64, scales=1, iterations=4))   # the default: auto
assert outcome.image.shape[:2] == (64, 64) or max(outcome.image.shape[:2]) == 64, outcome.image.shape
assert np.isfinite(outcome.loss) and outcome.iterations >= 1
print('STEP', outcome.step)
print('TF', [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx')])
"""


def test_ort_half_runs_with_tensorflow_blocked(seed_step_graph, store, weights):
    from engine.spec import FeatureSpec
    store.feature_model(FeatureSpec(weights.sha256))   # exported here, where TensorFlow is
    result = subprocess.run([sys.executable, "-c", BLOCK + RUN], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ONNX Runtime" in result.stdout or "ORT" in result.stdout.upper(), result.stdout
    assert "TF []" in result.stdout, result.stdout


def test_tensorflow_half_is_refused_when_blocked():
    # the block itself works: the TensorFlow half cannot be imported under it
    result = subprocess.run([sys.executable, "-c", BLOCK + "import engine.tf.objective"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "blocked in this test" in result.stderr


def test_the_cli_and_every_command_s_options_load_without_tensorflow_or_the_extras():
    # each package's command is gathered when the parser is built: none may load TensorFlow or an extra
    code = BLOCK + """
import cli
cli.build_parser()
assert cli.main(['stylize', '--size', '0', '-q']) == 2
print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'tf2onnx', 'fastapi',
                                                                 'distributed', 'av', 'cv2', 'onnxruntime'}))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "LOADED []" in result.stdout and "--size must be between 1 and 4096, not 0" in result.stderr

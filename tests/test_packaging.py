"""A plain (not editable) install, run from another folder: the bundled images are package data."""
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
RUN = ("import sys; sys.path.insert(0, sys.argv[1]); import cli; "
       "assert cli.__file__.startswith(sys.argv[1]), cli.__file__; sys.exit(cli.main(sys.argv[2:]))")


def test_a_plain_install_exports_and_stylizes(tmp_path):
    site, source = tmp_path / "site", tmp_path / "source"
    # a copy: setuptools builds in the source folder, and a build/ left there would outlive deleted modules
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                                 ".pytest_cache", ".gpu"))
    # no build isolation and no index: nothing leaves the machine (setuptools comes with the [test] extra)
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                              "--quiet", "--disable-pip-version-check", "--target", str(site), str(source)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    assert (site / "nst_examples" / "content" / "chelsea.jpg").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def cli(*args):
        return subprocess.run([sys.executable, "-c", RUN, str(site), *args], capture_output=True, text=True,
                              cwd=elsewhere)

    exported = cli("export", "-o", "vgg19.onnx")   # its parity check reads the bundled photograph
    assert exported.returncode == 0, exported.stderr
    assert (elsewhere / "vgg19.onnx").is_file() and "parity" in exported.stdout
    made = cli("stylize", "--size", "48", "--scales", "1", "--iterations", "2", "--step-engine", "ort",
               "--provider", "cpu", "--quiet", "-o", "out.png")   # the bundled photograph and painting
    assert made.returncode == 0, made.stderr
    with Image.open(elsewhere / "out.png") as img:
        assert img.size == (48, 32)

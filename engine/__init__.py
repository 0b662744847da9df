"""The style-transfer engine as a library: ``Stylizer`` holds it, ``Settings`` says what a run does.

    from engine import Settings, Stylizer, load_image
    outcome = Stylizer().run(load_image("photo.jpg"), [load_image("painting.jpg")], Settings(size=384))

Names are imported on first use, so that ``import engine.spec`` (the exporter, the GPU check)
does not load ONNX Runtime, and nothing here loads TensorFlow."""

_EXPORTS = {
    "Stylizer": "stylizer", "stylize": "stylizer", "Progress": "stylizer", "Outcome": "stylizer",
    "Interrupted": "stylizer", "Plan": "plan", "Targets": "targets",
    "Settings": "settings", "SettingsError": "settings", "LayerWeights": "settings",
    "ArtifactStore": "store", "MissingArtifact": "store",
    "load_image": "images", "save_image": "images",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    from importlib import import_module
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)

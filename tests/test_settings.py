"""The settings' declarations: one check for every front end, every bad value a ``SettingsError``
naming its field whatever its type, layer weights normalised alike in every form, and the CLI's
options and the API's fields made from the same declarations."""
import json
import math

import numpy as np
import pytest

from engine.settings import CONTROLS, DEFAULTS, IMAGE_INPUTS, LayerWeights, Settings, SettingsError, flag_for

# what a client can send in JSON, and more: every one wrong for most fields
ODD_VALUES = [None, True, False, "", "64", "x" * 10_000, [], [1], [[1, 2]], {}, {"a": 1}, math.nan, math.inf,
              -math.inf, -1, 0, 10 ** 400, 1.5, -1e308, 2 ** 63]


@pytest.mark.parametrize("name", list(CONTROLS))
def test_every_odd_value_is_a_settings_error_naming_its_field_or_a_value(name):
    for value in ODD_VALUES:
        try:
            settings = Settings.from_dict({name: value})
        except SettingsError as error:
            assert error.field == name or error.field in CONTROLS, (name, value, error)
            assert len(str(error)) < 600 and "\n" not in str(error), (name, value)
        else:   # accepted: then it is a value of the field's kind, within its bounds, and survives JSON
            assert Settings.from_dict(json.loads(settings.to_json())) == settings, (name, value)


@pytest.mark.parametrize("name", list(CONTROLS))
def test_every_odd_text_is_a_settings_error_naming_its_field(name):
    for text in ("", "nan", "inf", "-1", "1e999", "true", "x", "1,2", "block1_conv1:x", "0" * 5000, " 64 "):
        try:
            Settings.from_text({name: text})
        except SettingsError as error:
            assert error.field in CONTROLS and "\n" not in str(error), (name, text, error)


def test_layer_weights_are_normalised_alike_in_every_form():
    forms = ["block1_conv1:3,block2_conv1", {"block1_conv1": 3, "block2_conv1": 1},
             [["block1_conv1", 3], ["block2_conv1", 1]], (("block1_conv1", 3.0), ("block2_conv1", 1.0))]
    values = [Settings(style_layers=form).style_layers for form in forms]
    assert all(v == {"block1_conv1": 0.75, "block2_conv1": 0.25} for v in values), values
    assert Settings(style_layers=["block1_conv1", "block2_conv1"]).style_layers == \
        {"block1_conv1": 0.5, "block2_conv1": 0.5}
    thirds = Settings(style_layers="block1_conv1,block2_conv1,block3_conv1")
    assert Settings.from_dict(json.loads(thirds.to_json())) == thirds   # normalising twice changes nothing
    assert Settings(content_layers="").content_layers == {}   # content-free: style only
    for bad, says in (("block1_conv1:0", "all 0"), ("block1_conv1:-2", "non-negative"),
                      ("block1_conv1,block1_conv1", "twice"), ({"block1_conv1": True}, "not a number"),
                      ({"block1_conv1": 1e308, "block2_conv1": 1e308}, "too large")):
        with pytest.raises(SettingsError, match=says) as error:
            Settings(style_layers=bad)
        assert error.value.field == "style_layers"


def test_bounds_on_what_scales_work_and_memory():
    for changes, field in ((dict(size=4097), "size"), (dict(iterations=10_001), "iterations"),
                           (dict(scales=9), "scales"), (dict(scale_iterations=(10,) * 9), "scale_iterations"),
                           (dict(style_scale=4.5), "style_scale"), (dict(size=2048, style_scale=2.5), "style_scale"),
                           (dict(style_blend=(1.0,) * 17), "style_blend"), (dict(memory_limit=100), "memory_limit"),
                           (dict(tile=4112), "tile"), (dict(content_weight=1e13), "content_weight")):
        with pytest.raises(SettingsError) as error:
            Settings(**changes)
        assert error.value.field == field, changes
    with pytest.raises(SettingsError, match="at most 16"):
        DEFAULTS.check_styles(17)


def test_text_is_read_as_the_cli_and_a_form_write_it():
    settings = Settings.from_text({"size": " 96 ", "style_blend": "0.7,0.3", "scale_iterations": "", "jit": "off",
                                   "preserve_colors": "true", "tile": "64", "content_weight": "1e4"})
    assert settings.size == 96 and settings.style_blend == (0.7, 0.3) and settings.scale_iterations == ()
    assert not settings.jit and settings.preserve_colors == "luminance" and settings.content_weight == 1e4
    with pytest.raises(SettingsError, match="colour is not a setting"):
        Settings.from_text({"colour": "red"})


def test_the_cli_has_an_option_for_every_setting_and_names_errors_by_it(capsys):
    import cli
    from engine.options import settings_from_args
    parser = cli.build_parser()
    for command in ("stylize", "batch", "video"):
        text = parser._subparsers._group_actions[0].choices[command].format_help()
        for name, control in CONTROLS.items():
            assert control.cli_flag in text, (command, name)
    args = parser.parse_args(["stylize", "--size", "96", "--style-layers", "block1_conv1:3,block2_conv1",
                              "--no-xla", "--preserve-colors", "--init", "start.png", "--tile", "64"])
    settings = settings_from_args(args)
    assert settings.size == 96 and not settings.jit and settings.preserve_colors == "luminance"
    assert settings.init == "image" and args.init_image == "start.png" and settings.tile == 64
    assert dict(settings.style_layers) == {"block1_conv1": 0.75, "block2_conv1": 0.25}
    video = settings_from_args(parser.parse_args(["video", "in.mp4"]))
    assert video.size == 256 and video.step_engine == "ort"   # the command's own defaults
    assert flag_for("jit") == "--no-xla" and flag_for("masks") == "--mask" and flag_for("style_blend") == \
        "--style-weights"
    assert cli.main(["stylize", "--memory-limit", "5", "-q"]) == 2
    assert capsys.readouterr().err.strip() == ("nst: error: --memory-limit must be 0 (3/4 of the memory available) "
                                               "or between 256 and 1048576, not 5")


def test_every_picture_input_is_a_keyword_of_the_run():
    import inspect

    from engine.stylizer import Stylizer
    keywords = inspect.signature(Stylizer.run).parameters
    assert all(image.name in keywords for image in IMAGE_INPUTS)
    assert all(image.sets[0] in CONTROLS for image in IMAGE_INPUTS if image.sets)


def test_a_layer_weights_value_reads_back_from_its_text():
    weights = LayerWeights.of("block1_conv1:1,block3_conv1:2")
    assert LayerWeights.parse(weights.text()) == weights


def test_a_batch_picture_made_before_a_setting_existed_is_not_made_again(tmp_path):
    from batch.jobs import Job, is_done
    from engine.metadata import SETTINGS_KEY
    from engine.images import save_image
    sources = {"content": "c.jpg", "style": ["s.jpg"], "content_sha256": "a" * 64, "style_sha256": ["b" * 64]}
    made = json.loads(DEFAULTS.to_json())
    del made["init_noise"]   # an earlier version's picture: it had no such setting
    output = tmp_path / "c__s.png"
    save_image(np.zeros((8, 8, 3), np.uint8), output, {SETTINGS_KEY: json.dumps({**made, **sources})})
    same = Job(tmp_path / "c.jpg", (tmp_path / "s.jpg",), output, json.loads(DEFAULTS.to_json()), sources)
    assert is_done(same)
    other = Job(same.content, same.styles, output, json.loads(DEFAULTS.replace(init_noise=0.5).to_json()), sources)
    assert not is_done(other)

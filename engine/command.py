"""``nst stylize``: one picture from the command line, with a progress bar, Ctrl-C that keeps the
best picture so far, and the settings in the picture's metadata."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .errors import Stopped
from .interrupt import CtrlC
from .options import (add_count, add_engine_options, add_image_options, add_settings_options, add_weights_option,
                      settings_from_args)
from .settings import IMAGE_INPUTS


def add_parser(sub) -> None:
    p = sub.add_parser("stylize", help="make the picture",
                       description="Render the content image in the style of the style image(s): Gatys et al. on "
                                   "VGG19 with average pooling, coarse to fine, L-BFGS by default. With no "
                                   "arguments, stylizes a bundled photograph with The Starry Night.")
    p.add_argument("--content", help="content image (default: the bundled content/chelsea.jpg)")
    p.add_argument("--style", nargs="+", help="style image(s) (default: the bundled style/starry_night.jpg)")
    p.add_argument("-o", "--output", default="out.png", help="output image, PNG or JPEG by extension")
    add_settings_options(p)
    add_image_options(p)
    add_engine_options(p)
    add_count(p, "--save-every", at_least=0, default=0, metavar="N", help="also save every N-th iteration")
    p.add_argument("--export-only", action="store_true",
                   help="only export what these settings need (feature extractor, step graph), so that a machine "
                        "without TensorFlow can run them; writes no image")
    p.add_argument("--log-json", metavar="FILE", help="per iteration losses and elapsed time, one JSON object a line")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages; only the summary")
    add_weights_option(p)
    p.set_defaults(run=run)


def run(args) -> int:
    settings = settings_from_args(args)  # usage errors before anything is read or loaded
    settings.check_styles(len(args.style or [None]))
    from .images import DEFAULT_CONTENT, DEFAULT_STYLE, check_output_path, examples_dir, load_image, save_image
    from .masks import check_masks
    from .metadata import picture_metadata
    from .store import ArtifactStore
    from .stylizer import Interrupted, Stylizer

    log = (lambda *a: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    ctrl_c = CtrlC(log, "stopping after this evaluation; Ctrl-C again to abort without a picture")
    try:
        content_path = Path(args.content) if args.content else examples_dir() / DEFAULT_CONTENT
        style_paths = [Path(p) for p in args.style] if args.style else [examples_dir() / DEFAULT_STYLE]
        output = None if args.export_only else check_output_path(args.output)
        content = load_image(content_path)
        styles = [load_image(path) for path in style_paths]
        # the pictures besides the photograph and the paintings, by their declared names
        files = {image.name: getattr(args, image.name, None) for image in IMAGE_INPUTS}
        pictures = {name: ([load_image(p) for p in given] if isinstance(given, list) else load_image(given))
                    for name, given in files.items() if given}
        check_masks(pictures.get("masks"), pictures.get("content_mask"), len(styles))

        from models.weights import load_weights
        weights = load_weights(args.weights)
        log(f"weights: {weights.source}")
        stylizer = Stylizer(weights, provider=args.provider, threads=args.threads, lean=True,
                            store=ArtifactStore(log=log), log=log)
        plan = stylizer.plan(settings, content.shape,
                             masked=bool(pictures.get("masks")) or pictures.get("content_mask") is not None)
        if args.export_only:
            paths = [p for p in (plan.feature_model, plan.step_graph) if p]
            if not paths:
                print("nothing to export: with --targets tf and the TensorFlow step, TensorFlow does all the work")
                return 0
            print(f"ready for these settings ({len(paths)} model(s) in {paths[0].parent}; any image size):")
            for path in paths:
                print(f"  {path.name}")
            return 0
        try:
            outcome = ctrl_c.in_thread(lambda: _run_with_progress(stylizer, plan, content, styles, output,
                                                                  ctrl_c.event, args, pictures))
        except Interrupted:
            raise Stopped("interrupted before the first evaluation: no picture written") from None
    finally:
        ctrl_c.close()
    metadata = picture_metadata(outcome, content=str(content_path), style=[str(p) for p in style_paths],
                                **{name: given for name, given in files.items() if given})
    save_image(outcome.image, output, metadata)
    h, w = outcome.image.shape[:2]
    status = "interrupted, best image so far" if outcome.interrupted else "done"
    if outcome.scale < outcome.scales:
        status += (f" (stopped at scale {outcome.scale} of {outcome.scales}: that scale's picture, upsampled to the "
                   "size asked)")
    print(f"{status}: {w}x{h} in {outcome.seconds:.1f} s, {outcome.iterations} iterations, "
          f"loss {outcome.loss:.4g} (content {outcome.parts['content']:.4g}, style {outcome.parts['style']:.4g}, "
          f"tv {outcome.parts['tv']:.4g}); targets by {outcome.targets}; steps by {outcome.step}; wrote {output}")
    return 130 if outcome.interrupted else 0


def _run_with_progress(stylizer, plan, content, styles, output, stop, args, pictures):
    from tqdm import tqdm

    from .images import save_image
    bar = None
    log_file = open(args.log_json, "w", buffering=1) if args.log_json else None   # a line at a time: followable
    stem = output.with_suffix("")

    def on_progress(p):
        nonlocal bar
        if p.iteration == 1:
            if bar:
                bar.close()
            bar = tqdm(total=p.iterations, disable=args.quiet, file=sys.stderr, unit="it", dynamic_ncols=True,
                       desc=f"scale {p.scale + 1}/{p.scales} {p.shape[1]}x{p.shape[0]}")
        bar.update(1)
        bar.set_postfix_str(f"loss {p.loss:.4g}", refresh=False)
        if log_file:
            log_file.write(json.dumps({"scale": p.scale, "size": list(p.shape), "iteration": p.iteration,
                                       "loss": p.loss, **p.parts, "elapsed_s": round(p.elapsed, 4)}) + "\n")
        if args.save_every and p.iteration % args.save_every == 0:
            save_image(p.image, f"{stem}_s{p.scale + 1}_{p.iteration:04d}.png")

    try:
        return stylizer.run(content, styles, plan.settings, callback=on_progress, stop=stop, plan=plan, **pictures)
    finally:
        if bar:
            bar.close()
        if log_file:
            log_file.close()

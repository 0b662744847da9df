#!/usr/bin/env python3
"""nst: neural style transfer on real VGG19 ImageNet features (TensorFlow + ONNX Runtime).

A thin front: each package owns its command (``add_parser(sub)`` and the function it runs); this
file gathers them, runs one, and says any failure in one line with an exit status
(``engine.errors``): 0 done, 1 a problem with an input, a file or a backend, 2 a usage error, 130
interrupted.
"""
from __future__ import annotations

import argparse
import sys
from functools import partial
from importlib import import_module

from engine.metadata import VERSION as __version__

# in the order `nst --help` lists them
COMMANDS = ("exporter.command", "parity.command", "engine.command", "batch.command", "video.command",
            "bench.command", "studio.command")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nst", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"nst {__version__}")
    # every command's help lists the defaults
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=partial(
        argparse.ArgumentParser, formatter_class=argparse.ArgumentDefaultsHelpFormatter))
    for name in COMMANDS:
        import_module(name).add_parser(sub)
    return parser


def main(argv=None) -> int:
    from engine.errors import cli_line, exit_status
    from engine.options import check_counts
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 2
        check_counts(args)
        return args.run(args)
    except (Exception, KeyboardInterrupt) as exc:
        status = exit_status(exc)
        if status is None:   # a failure no one foresaw: its traceback says more than a line
            raise
        print(f"nst: error: {cli_line(exc)}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())

"""``cli.py bench``: feature extraction (TensorFlow vs ONNX Runtime), one loss-and-gradient step of
each engine, the style-transfer loop against the seed's, and a held engine's later runs. A tool
over the engine.

Every ratio is measured in one run on one machine; absolute times drift, ratios less so. Each
result names the CPU it ran on (model and the instruction sets that change the ratios)."""
from __future__ import annotations

import json
from pathlib import Path


def main(args) -> int:
    if args.stylize:
        from .loop import stylize_bench
        result = stylize_bench(args)
    elif args.held:
        from .held import held_bench
        result = held_bench(args)
    elif args.steps:
        from .steps import step_bench
        result = step_bench(args)
    else:
        from .features import feature_bench
        result = feature_bench(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0

"""One export in a process of its own: ``python -m exporter feature|step --spec JSON --output PATH``.

``engine.store`` starts it when a run needs a model that is not exported yet, so that TensorFlow
and the conversion's memory (2-3 GB for a step graph) are gone when the run starts. The weights
are the ones the parent decoded and cached (``models.weights.load_cached``). Progress goes to
stderr; the last line of stdout is the result as JSON. Exit status: 0 done, 1 the export failed,
3 TensorFlow cannot be imported here.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exporter", description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=("feature", "step"))
    parser.add_argument("--spec", required=True, help="the FeatureSpec or StepSpec as JSON")
    parser.add_argument("--precision", default="fp32", help="feature models only")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)

    from engine.memory import peak_rss_mb
    from engine.spec import FeatureSpec, StepSpec
    from models.weights import load_cached

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        importlib.import_module("models.keras_vgg19")   # TensorFlow, imported quietly
    except ImportError as exc:
        log(f"exporting needs TensorFlow ({exc})")
        return 3
    start = time.perf_counter()
    try:
        if args.kind == "step":
            from exporter.step import export_step
            spec = StepSpec.from_json(args.spec)
            result = export_step(spec, load_cached(spec.features.weights_sha256), args.output, log=log)
            loss_err, grad_err = result.worst
            log(f"checked against float64 TensorFlow at {len(result.checks) // 2} sizes, as exported and with "
                f"Winograd: loss within {loss_err:.1e}, gradient within {grad_err:.1e} (relative, median of "
                f"{result.checks[0]['images']} images a size)")
            summary = {"checks": result.checks}
        else:
            from exporter.export import export
            spec = FeatureSpec.from_json(args.spec)
            result = export(spec, load_cached(spec.weights_sha256), args.output, precision=args.precision, log=log)
            log(f"checked against TensorFlow: max relative error {result.max_rel_error:.1e}")
            summary = {"max_rel_error": result.max_rel_error}
    except Exception as exc:  # one line for the parent to show; the details are the exporter's
        log(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return 1
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(), **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

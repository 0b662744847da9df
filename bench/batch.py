"""Pictures per hour of a batch on a local cluster of 2 workers x 1 core against 1 such worker,
same pictures, same settings, one after the other in the same run.

    python -m bench.batch --pictures 8 --size 128 --iterations 20 --json docs/bench-batch.json

The cluster's start-up is timed separately; the rate is over the pictures alone (submit to the last
result), so the ratio is the cluster's own overhead and the machine's contention."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pictures", type=int, default=8)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--json")
    args = p.parse_args(argv)

    from batch.cluster import connect
    from batch.jobs import make_jobs
    from batch.run import export_first, run_batch
    from bench.machine import cpu, describe_cpu
    from engine.images import bundled
    from engine.settings import Settings

    settings = Settings(size=args.size, iterations=args.iterations, scales=1, targets="ort", step_engine="ort")
    export_first(settings)
    contents, styles = bundled("content"), bundled("style")
    rows = []
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as out:
            jobs = make_jobs(contents, styles, settings, Path(out))[:args.pictures]
            start = time.perf_counter()
            with connect(workers=workers) as client:
                client.wait_for_workers(workers)
                client.run(lambda: None)   # the plugin has built every engine once this returns
                started = time.perf_counter()
                results = run_batch(client, jobs, quiet=True)
                seconds = time.perf_counter() - started
            assert all(r.status == "done" for r in results), results
        rows.append({"workers": workers, "pictures": len(jobs), "seconds": seconds,
                     "startup_seconds": started - start, "pictures_per_hour": len(jobs) * 3600 / seconds})
        print(f"{workers} worker(s): {len(jobs)} pictures in {seconds:.1f} s "
              f"({rows[-1]['pictures_per_hour']:.0f}/h; cluster start {started - start:.1f} s)", flush=True)
    speedup = rows[1]["pictures_per_hour"] / rows[0]["pictures_per_hour"]
    print(f"2 workers / 1 worker: {speedup:.2f}x")
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": describe_cpu(cpu()),
              "command": "python -m bench.batch " + " ".join(argv if argv is not None else sys.argv[1:]),
              "size": args.size, "iterations": args.iterations, "rows": rows, "speedup": speedup}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

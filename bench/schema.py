"""``python -m bench.schema``: the studio's API fuzzed from its own OpenAPI schema (schemathesis with
hypothesis) at length, against a real server (``cli.py serve`` on a loopback port, its own data
folder): requests the schema allows and requests it does not, every operation. The properties
(``answers``): no 5xx, no hang, a refusal in one line of JSON, the server still answering the next
request. ``tests/test_serve_schema.py`` runs the same with a bounded number of examples.

Every job the generator gets accepted is cancelled at once, while it waits behind one long job of
tiny pictures holding the only worker: the server is the real one, and no generated job of hours
(size 4096, 10000 evaluations) runs."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

# one long job of tiny pictures: 8 scales of 10000 evaluations at <= 32 px
HOLDER = {"size": "32", "min_size": "16", "scales": "8", "iterations": "10000", "step_engine": "ort"}
SERVER_OPTIONS = ("--no-warm", "--workers", "1", "--threads", "1", "--queue", "64")


def answers(base: str, case) -> int:
    """One generated request, and the properties it must have; returns its status."""
    response = case.call(base_url=base, timeout=(5, 20))   # a hang is a timeout: an error
    status = response.status_code
    assert status < 500, f"{case.method} {case.formatted_path}: {status} {response.text[:300]}"
    if status >= 400:
        detail = response.json()["detail"]
        assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail, detail
    elif status == 202 and case.path == "/api/jobs":
        requests.post(f"{base}/api/jobs/{response.json()['id']}/cancel", timeout=10)
    assert requests.get(f"{base}/api/bundled", timeout=5).ok, "the server stopped answering"
    return status


def fuzz(base: str, examples: dict, *, derandomize: bool = True) -> Counter:
    """Every operation of the server's schema, ``examples[path]`` cases each (``examples[None]``
    for the rest), half of them outside the schema; ``(operation, status) -> count``. A case that
    breaks a property raises, shrunk by hypothesis to its simplest form."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    api = schemathesis.openapi.from_url(f"{base}/openapi.json")
    seen: Counter = Counter()
    for result in api.get_all_operations():
        operation = result.ok()
        cases = (operation.as_strategy(schemathesis.GenerationMode.POSITIVE)
                 | operation.as_strategy(schemathesis.GenerationMode.NEGATIVE))
        count = examples.get(f"{operation.method.upper()} {operation.path}", examples[None])

        @settings(max_examples=count, deadline=None, derandomize=derandomize, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(cases)
        def check(case):
            seen[(operation.label, answers(base, case))] += 1

        check()
    return seen


def main(argv=None) -> int:
    from bench.machine import cpu
    from bench.serve import Server
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="examples of POST /api/jobs")
    parser.add_argument("--others", type=int, default=300, help="examples of every other operation")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory() as data:
        server = Server(Path(data), 1, *SERVER_OPTIONS)
        try:
            holder = requests.post(server.base + "/api/jobs", data=HOLDER, timeout=60).json()["id"]
            seen = fuzz(server.base, {"POST /api/jobs": args.jobs, None: args.others}, derandomize=False)
            requests.post(f"{server.base}/api/jobs/{holder}/cancel", timeout=10)
        finally:
            server.close()
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu(),
              "seconds": round(time.perf_counter() - begin), "requests": sum(seen.values()),
              "server_errors": sum(n for (_, status), n in seen.items() if status >= 500),
              "by_operation": {f"{op} -> {status}": n for (op, status), n in sorted(seen.items())}}
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

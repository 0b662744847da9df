"""``python -m bench.schema``: the studio's API fuzzed from its own OpenAPI schema (schemathesis with
hypothesis) at length, against a real server (``cli.py serve`` on a loopback port, its own data
folder): requests the schema allows and requests it does not, every operation, and the ``settings``
field's JSON object (a string to the schema) from the settings the server declares, each with any
JSON value (``fuzz_settings``). The properties (``checked``): no 5xx, no hang, a refusal in one line
of JSON, the server still answering the next request. ``tests/test_serve_schema.py`` runs the same
with a bounded number of examples.

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
    return checked(base, response, f"{case.method} {case.formatted_path}", case.path == "/api/jobs")


def checked(base: str, response, label: str, submission: bool) -> int:
    """The properties of every answer: below 500, a refusal in one line of JSON, a job accepted
    cancelled at once, and the server still answering; returns the status."""
    status = response.status_code
    assert status < 500, f"{label}: {status} {response.text[:300]}"
    if status >= 400:
        detail = response.json()["detail"]
        assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail, detail
    elif status == 202 and submission:
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


def json_values(kind: str = ""):
    """Any JSON value, weighted to the edges a number's reading trips on (nan, inf, integers past a
    float's range, numbers as text) and to the shape of a setting of ``kind`` (its declaration's:
    a list for ints and floats, an object or a list of VGG19 layers for layers)."""
    from hypothesis import strategies as st

    from models.vgg19 import ALL_LAYERS
    edges = st.sampled_from([10 ** 400, -10 ** 400, 2 ** 64, 1e308, -0.0, 1e-320, float("nan"), float("inf"),
                             -float("inf"), "1e400", "nan", "", "0x10", "1_000"])
    scalars = edges | st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    layers = st.sampled_from(ALL_LAYERS)
    anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        layers | st.text(max_size=8), inner, max_size=4), max_leaves=8)
    if kind == "layers":
        return anything | st.dictionaries(layers, scalars, min_size=1, max_size=4) | st.lists(layers | scalars,
                                                                                             max_size=4)
    if kind in ("ints", "floats"):
        return anything | st.lists(scalars, min_size=1, max_size=4)
    return anything


def fuzz_settings(base: str, examples: int, *, derandomize: bool = True) -> Counter:
    """The ``settings`` field's JSON object, which the OpenAPI schema can only call a string:
    ``examples`` objects for every setting the server declares (``/api/settings``), each naming it
    with any JSON value, sometimes beside a name that is no setting; ``status -> count``."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    declared = requests.get(f"{base}/api/settings", timeout=10).json()["settings"]
    seen: Counter = Counter()
    for control in declared:
        objects = st.fixed_dictionaries({control["name"]: json_values(control["kind"])},
                                        optional={"no_such_setting": json_values()})

        @settings(max_examples=examples, deadline=None, derandomize=derandomize, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(objects)
        def check(value):
            body = json.dumps(value)   # nan and inf as NaN and Infinity: Python's json reads them
            response = requests.post(f"{base}/api/jobs", data={"settings": body}, timeout=(5, 20))
            seen[checked(base, response, f"POST /api/jobs settings={body[:200]}", True)] += 1

        check()
    return seen


def main(argv=None) -> int:
    from bench.machine import cpu
    from bench.serve import Server
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="examples of POST /api/jobs")
    parser.add_argument("--others", type=int, default=300, help="examples of every other operation")
    parser.add_argument("--settings", type=int, default=50,
                        help="examples of the settings field's JSON object, per setting")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory() as data:
        server = Server(Path(data), 1, *SERVER_OPTIONS)
        try:
            holder = requests.post(server.base + "/api/jobs", data=HOLDER, timeout=60).json()["id"]
            seen = fuzz(server.base, {"POST /api/jobs": args.jobs, None: args.others}, derandomize=False)
            seen.update({("POST /api/jobs (settings JSON)", status): n for status, n in
                         fuzz_settings(server.base, args.settings, derandomize=False).items()})
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

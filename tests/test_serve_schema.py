"""Property-based tests of the live studio from its own OpenAPI schema (schemathesis, hypothesis): any
request the schema allows, and the fuzzed ones it does not, is answered with a status below 500
(a refusal in one line of JSON), without hanging, and leaves the server answering the next one.

A bounded number of examples here, the same ones each run (``bench.schema.fuzz``, derandomized);
``python -m bench.schema`` runs the same properties at length with fresh ones."""
import pytest

pytest.importorskip("schemathesis", reason="schemathesis is in the test extra")
pytest.importorskip("fastapi", reason="the studio needs the web extra")
import requests  # noqa: E402
from studio_server import Server  # noqa: E402

from bench.schema import HOLDER, SERVER_OPTIONS, fuzz  # noqa: E402

EXAMPLES = {"POST /api/jobs": 80, None: 10}   # per operation: ~40 s here on a shared CPU


def test_no_request_gets_a_server_error_or_stops_the_server(tmp_path, weights):
    server = Server(tmp_path / "data", *SERVER_OPTIONS)
    try:
        holder = server.submit(**HOLDER).json()["id"]
        seen = fuzz(server.base, EXAMPLES)
        statuses = {status for _, status in seen}
        # the generator reached both sides of every check: accepted jobs and every kind of refusal
        assert {202, 404, 422} <= statuses, seen
        assert server.job(holder)["state"] == "running"   # the worker was never given a generated job
        requests.post(server.url(f"/api/jobs/{holder}/cancel"), timeout=10)
    finally:
        server.close()

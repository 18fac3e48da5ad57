"""The OpenAPI document matches the app's routes, and the running app honours it.

Schemathesis generates requests from the document (valid ones, and deliberately invalid ones)
against the app on loopback TCP; no input may produce a 5xx, and answers to valid requests
must match the documented statuses and schemas.
"""

from __future__ import annotations

import re

import pytest
import requests

from dnsd.api.app import VERSION_PREFIX, all_routes, create_app
from dnsd.api.openapi import build_document, documented_operations
from tests.support.requires import require_module

schemathesis = require_module("schemathesis", "pip install -e .[test]")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.specs.openapi import checks  # noqa: E402

CONFORMANCE = [
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def _served_operations(engine) -> set[tuple[str, str]]:
    app = create_app(engine, version="t")
    out = set()
    for route in app.router.routes():
        path = route.resource.canonical
        path = path.removeprefix("/{version}")  # the canonical form drops the regex
        out.add((route.method, path))
    return out


def test_every_route_is_documented_and_every_documented_path_is_routed(engine):
    document = build_document("t")
    assert _served_operations(engine) == documented_operations(document)
    assert {(m, p) for m, p, _ in all_routes()} == documented_operations(document)


def test_every_route_is_served_under_a_version_prefix_too(engine):
    app = create_app(engine, version="t")
    served = {(r.method, r.resource.canonical) for r in app.router.routes()}
    assert VERSION_PREFIX.startswith("/{version:")
    for method, path, _ in all_routes():
        assert (method, path) in served and (method, "/{version}" + path) in served


def test_document_is_served_and_names_the_daemon_version(served_tcp):
    resp = requests.get(f"{served_tcp.base_url}/v1.41/openapi.json", timeout=10)
    assert resp.status_code == 200
    body = resp.json()
    assert body == build_document("0.0.0-test")
    assert body["openapi"].startswith("3.") and body["info"]["version"] == "0.0.0-test"
    # Every $ref points at something that exists.
    text = resp.text
    for kind, name in re.findall(r'"#/components/(\w+)/(\w+)"', text):
        assert name in body["components"][kind], (kind, name)


def _operations() -> list:
    schema = schemathesis.openapi.from_dict(build_document("t"))
    return [result.ok() for result in schema.get_all_operations()]


def _exercise(operation, mode: str, base_url: str, session, failures: list[str]) -> None:
    """Send generated requests for one operation; record 5xx answers."""
    generation = schemathesis.GenerationMode(mode)

    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases every run: a failure here is reproducible
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=generation))
    def run(case) -> None:
        response = case.call(base_url=base_url, session=session)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path}: {response.text}")
        else:
            # Documented status, content type and body schema, for valid and invalid input
            # alike. (Not "valid input is accepted": a schema cannot say which subnets overlap.)
            case.validate_response(response, checks=CONFORMANCE)

    run()


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_input_makes_the_app_fail(served_tcp, mode):
    """Every documented operation, fed generated input: never a 5xx."""
    operations = _operations()
    assert len(operations) == len(documented_operations(build_document("t")))
    failures: list[str] = []
    with requests.Session() as session:
        for operation in operations:
            if operation.method.upper() == "HEAD":
                continue  # no body to check; the route tests cover it
            if operation.path == "/events":
                continue  # a stream without end unless `until`: tests/unit/api/test_events.py
            if mode == "negative" and not len(operation.body):
                # Path and query parameters are free-form strings: no string is invalid.
                continue
            _exercise(operation, mode, served_tcp.base_url, session, failures)
    assert not failures, failures

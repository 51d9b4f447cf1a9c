"""Property-based API tests: schemathesis generates requests from the live ``/openapi.json``
of a real server and checks every answer: never a 5xx, and status code, content type, headers
and body always as the schema documents them. Schema-violating requests must be rejected.

``positive_data_acceptance`` is left out on purpose: the schema cannot say that a spectrum
must have exactly ``seq_len`` finite values, so schema-valid requests are rightly refused
with a documented 422.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
FAST_EXAMPLES = 12  # per operation in the default run (13 operations: well under a minute)
SLOW_EXAMPLES = 200


@pytest.fixture(scope="module")
def live_server(tiny_artifact, tmp_path_factory):
    from hardening_helpers import service_env

    from wavemae.bench.servers import ServerProcess, free_port, service_command

    folder = tmp_path_factory.mktemp("schemathesis")
    port = free_port()
    env = service_env(tiny_artifact, folder, host="127.0.0.1", port=port, max_wait_ms=0)
    with ServerProcess(service_command(), port, env=env, cwd=folder) as server:
        yield server
        # Whatever schemathesis sent, the server must still be alive and ready.
        assert server.process.poll() is None, server.log_tail()


@pytest.fixture(scope="module")
def api_schema(live_server):
    return schemathesis.openapi.from_url(live_server.url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=FAST_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(case):
    case.call_and_validate(checks=CHECKS, timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(900)  # 200 examples of one operation; a busy machine needs more than 300 s
@schema.parametrize()
@settings(
    max_examples=SLOW_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    # Same examples every run, so CI is reproducible; WAVEMAE_FUZZ_RANDOM=1 explores new ones
    # (that is how the malformed-HTTP 400 and the repeated query parameter were found).
    derandomize=not os.environ.get("WAVEMAE_FUZZ_RANDOM"),
)
def test_api_conforms_to_its_schema_many_examples(case):
    case.call_and_validate(checks=CHECKS, timeout=30)

"""Property-based fuzzing of the OpenAPI with schemathesis (SQLite only, bounded): no request gives a 5xx, and
every answer has a status and a body the OpenAPI document declares.

Every operation of the app's own ``/openapi.json`` is called with up to MAX_EXAMPLES generated requests, as an
admin and as a member of team alpha.
"""

from collections.abc import Callable

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from integration.server.stargate_harness import Harness

MAX_EXAMPLES = 15
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.mark.slow
def test_no_generated_request_makes_the_server_fail(make_harness: Callable[[str], Harness], sqlite_url: str) -> None:
    harness = make_harness(sqlite_url)
    harness.submit()
    harness.submit(queue="beta-q")
    schema = schemathesis.openapi.from_asgi("/openapi.json", harness.app)
    roles = (harness.headers(), harness.headers("member", "alpha"))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: schemathesis.Case) -> None:
            for headers in roles:
                case.call_and_validate(headers=headers, checks=CHECKS)

        fuzz()

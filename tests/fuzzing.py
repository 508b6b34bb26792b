"""Fuzzing a live server's OpenAPI description with schemathesis: no input may give a 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error


def assert_no_server_errors(url: str, *, min_operations: int, examples: int) -> None:
    """Call every operation of ``url``/openapi.json with ``examples`` generated inputs each
    (deterministically); fail on any 5xx answer. At least ``min_operations`` must exist."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= min_operations
    for operation in operations:

        @given(operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call()
            case.validate_response(response, checks=[not_a_server_error])

        check()

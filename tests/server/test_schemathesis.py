"""Property-based requests from the served OpenAPI document: the server never answers with a 5xx."""

from __future__ import annotations

import pathlib

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.server.conftest import server_settings
from tests.support.live_server import LiveServer

MAX_EXAMPLES = 40  # per operation; bounded so the suite stays fast


def test_no_server_errors_on_any_operation(tmp_path: pathlib.Path) -> None:
    live = LiveServer(server_settings(tmp_path)).start()
    try:
        schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 5
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def no_server_error(case: schemathesis.Case) -> None:
                case.call_and_validate(checks=[not_a_server_error], timeout=30)

            no_server_error()
    finally:
        live.stop()

"""Property-based tests of the whole API from its own OpenAPI document (Schemathesis).

A real `linkflow api` process serves the document; for every operation
Schemathesis generates valid and invalid requests, authenticated as a user,
and checks that no answer is a server error and that every answer matches
the document: status code, content type, headers and body schema. Examples
per operation and mode are bounded to keep the run under a minute.

(Schemathesis' own pytest integration, `from_fixture`, relies on a pytest
internal that pytest 9 removed, so operations are walked here with its
Python API: one Hypothesis run per operation and generation mode.)
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api._server import Server, linkflow_api
from tests.api._support import PASSWORD, new_email

# Operations that would end or change the session the run is authenticated with.
SESSION_ENDING = {
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/mfa/setup"),
    ("POST", "/api/v1/auth/mfa/verify"),
    ("PUT", "/api/v1/users/me"),
}
MAX_EXAMPLES = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with linkflow_api(tmp_path_factory.mktemp("schemathesis")) as server:
        yield server


def _register(client: httpx.Client, label: str) -> str:
    response = client.post(
        "/api/v1/auth/register", json={"email": new_email(label), "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["access_token"]
    return token


def _run(operation: schemathesis.APIOperation, mode: GenerationMode, url: str, token: str) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        headers = dict(case.headers or {})
        headers.setdefault("Authorization", f"Bearer {token}")
        case.call_and_validate(base_url=url, headers=headers, checks=CHECKS)

    run()


def test_the_api_matches_its_schema_and_never_fails(live_server: Server) -> None:
    """No 5xx; status, content type, headers and body as the OpenAPI document says."""
    with httpx.Client(base_url=live_server.url) as client:
        _register(client, "admin")  # the instance's first account; the run uses the second
        token = _register(client, "fuzz")
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")
    failures: list[str] = []
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SESSION_ENDING:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _run(operation, mode, live_server.url, token)
            except Unsatisfiable:
                continue  # nothing to make invalid: the operation takes no input
            except Exception as error:  # noqa: BLE001 - collect every operation's failure
                failures.append(
                    f"{operation.method.upper()} {operation.path} ({mode.value}): {error}"
                )
        tested += 1
    assert tested >= 20
    assert not failures, "\n\n".join(failures)

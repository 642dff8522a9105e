"""Schemathesis against the live REST API: every operation of the served OpenAPI document,
with valid and invalid generated requests and a key holding every scope. No answer may be a
5xx, and every answer must match the document (status code, content type, body schema,
headers) and write its numbers as JavaScript does: an integer never has a fraction (`120`,
not `120.0`), so a field the document types `integer` holds one a typed client can read
(the schema check alone accepts `120.0` as an integer)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode

from owlat.app.api_keys import SCOPES
from owlat.app.rest_api.openapi import DOCUMENT
from tests.app.conftest import Site
from tests.app.test_rest_api import api_key, integral_floats, organization

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


class _Fuzzer:
    """Calls the live server and checks each answer against the document."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {key}"}
        self.failures: list[str] = []
        self.statuses: dict[str, set[int]] = {}  # answers to valid requests, by operation

    def call(self, case: Any, valid: bool) -> None:
        response = case.call(base_url=self.base_url, headers=self.headers)
        if valid:
            self.statuses.setdefault(case.operation.label, set()).add(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=self.headers)
        if response.headers.get("content-type", [""])[0].startswith("application/json"):
            written = integral_floats(response.content.decode())
            assert not written, f"{case.operation.label}: integers written as {written}"

    def happy_path(self, operation: Any, example: dict[str, Any]) -> None:
        parameters = {k: val for k, val in example.items() if k != "body"}
        if "body" in example:
            case = operation.Case(
                path_parameters=parameters, body=example["body"], media_type="application/json"
            )
        else:
            case = operation.Case(path_parameters=parameters)
        self.attempt(f"{operation.label} [happy path]", lambda: self.call(case, True))

    def fuzz(self, operation: Any, mode: GenerationMode) -> None:
        @hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            self.call(case, mode is GenerationMode.POSITIVE)

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to get wrong (no inputs)
        except (Exception, BaseExceptionGroup) as error:
            self.failures.append(f"{operation.label} [{mode.value}]: {error}")

    def attempt(self, label: str, step: Any) -> None:
        try:
            step()
        except (Exception, BaseExceptionGroup) as error:
            self.failures.append(f"{label}: {error}")


def _fuzz(base_url: str, key: str, known: dict[str, Any]) -> tuple[list[str], _Fuzzer]:
    """Run every operation of the served document on its happy path (`known`: operationId
    -> path parameters and body naming existing documents), then fuzz it in both
    generation modes; returns the operations run and the fuzzer's findings."""
    served = httpx.get(base_url + "/api/v1/openapi.json").json()
    assert served == json.loads(json.dumps(DOCUMENT))
    fuzzer = _Fuzzer(base_url, key)
    ran = []
    for result in schemathesis.openapi.from_dict(served).get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        fuzzer.happy_path(operation, known.get(operation.definition.raw["operationId"], {}))
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            ran.append(f"{operation.label} [{mode.value}]")
            fuzzer.fuzz(operation, mode)
    return ran, fuzzer


async def test_every_operation_conforms(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("owlat.app.api_keys.BUCKET_CAPACITY", 1_000_000.0)
    owner, _ = await organization(site, "acme")
    key = await api_key(owner, SCOPES)
    list_id = await owner.mutation(
        "mailingLists:create", {"name": "News", "requireDoubleOptIn": False}
    )
    for email in ("known@example.com", "member@example.com"):
        await owner.mutation("contacts:createFromSession", {"email": email})
    doomed = await owner.mutation("contacts:createFromSession", {"email": "doomed@example.com"})
    blocks = [{"id": "t", "type": "text", "content": {"html": "<p>Hi {{name}}</p>"}}]
    receipt = await owner.mutation(
        "transactionalEmails:create",
        {"name": "Receipt", "slug": "receipt", "subject": "Hi", "content": json.dumps(blocks)},
    )
    await owner.mutation("transactionalEmails:publish", {"transactionalEmailId": receipt})
    member = {"listId": list_id, "body": {"email": "member@example.com"}}
    known = {
        "getContact": {"idOrEmail": "known@example.com"},
        "updateContact": {"idOrEmail": "known@example.com", "body": {"firstName": "Fuzz"}},
        "deleteContact": {"idOrEmail": doomed},
        "sendEvent": {"body": {"email": "member@example.com", "eventName": "fuzzed"}},
        "sendTransactional": {"body": {"slug": "receipt", "email": "member@example.com"}},
        "subscribeContact": member,
        "subscribeMailingListContact": member,
        "unsubscribeContact": {"listId": list_id, "emailOrId": "member@example.com"},
        "unsubscribeMailingListContact": {"listId": list_id, "emailOrId": "member@example.com"},
    }
    async with asyncio.timeout(90):
        ran, fuzzer = await asyncio.to_thread(_fuzz, site.site_url, key, known)
    assert not fuzzer.failures, "\n\n".join(fuzzer.failures)
    expected = [
        f"{method.upper()} {path} [{mode}]"
        for path, methods in DOCUMENT["paths"].items()
        for method in methods
        for mode in ("positive", "negative")
    ]
    assert sorted(ran) == sorted(expected) and len(ran) == 26
    # every operation also succeeded at least once (not only refusals)
    statuses = fuzzer.statuses
    unhappy = {label: codes for label, codes in statuses.items() if not codes & {200, 201, 202}}
    assert not unhappy and len(statuses) == 13, statuses

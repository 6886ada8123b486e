"""Property-based run of the service's own OpenAPI document against the running service.

Schemathesis generates valid and invalid requests for every documented operation
(bounded to 50 examples per operation) and checks that the service never answers
with a server error and that statuses, content types, headers and bodies are the
documented ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from sgx_quote_helper.pcs import Manufacturer, RunningService, serve_in_thread
from sgx_quote_helper.pcs._openapi import openapi_document

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    path: Path = tmp_path_factory.mktemp("sim")
    manufacturer = Manufacturer.create(path)
    manufacturer.register_platform(manufacturer.new_platform("default", path / "platform"))
    with serve_in_thread(path) as running:
        yield running


# The document the service serves at /openapi.json (checked equal below).
schema = schemathesis.openapi.from_dict(
    openapi_document(),
    config=SchemathesisConfig.from_dict({"generation": {"max-examples": 50}}),
)


def test_the_served_document_is_the_one_fuzzed(service: RunningService) -> None:
    with httpx.Client(base_url=service.url) as client:
        assert client.get("/openapi.json").json() == openapi_document()


@pytest.mark.filterwarnings("ignore")  # third-party deprecations must not fail a fuzz run
@schema.parametrize()
def test_service_conforms_to_its_openapi_document(case: Any, service: RunningService) -> None:
    response = case.call_and_validate(base_url=service.url, checks=CHECKS)
    assert response.status_code < 500

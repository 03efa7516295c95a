"""Schemathesis over /openapi.json, in-process (ASGI, no network): every operation of the document,
a small budget of generated requests each (examples, coverage and fuzzing phases), authenticated
with the bootstrap admin key. A test fails on any 5xx and on any answer the document does not
describe: an undocumented status, a content type or body or header other than documented, an
``Allow`` header that disagrees with the document, a method the document does not list that
does not answer 405.

The app is built once for the module, on its own data directory: schemathesis parametrizes at
collection, before any fixture exists (its fixture-based loader, ``schemathesis.pytest.
from_fixture``, relies on a pytest internal that pytest 9 removed). The schemathesis pytest
plugin starts the app's lifespan for each operation's test and ends it at that test's teardown.

Run alone: ``pytest tests/test_openapi_fuzz.py`` (about 20 s). A failure prints the request as a
curl command against ``http://testserver``; replay it with a TestClient on ``create_app``.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks

from agent_sdk.config import load_settings
from agent_sdk.server.app import create_app

# What a failure is. Not the checks that guess at intent (positive_data_acceptance takes any 4xx
# to a request the schema allows as a bug, though an opaque cursor or an expiry in the past
# cannot be told apart by a schema), nor those that need several credentials or resources.
CHECK_NAMES = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "allow_header_conformance",
    "unsupported_method",
]
load_all_checks()
CHECKS_RUN = CHECKS.get_by_names(CHECK_NAMES)

_DIR = Path(tempfile.mkdtemp(prefix="agent-sdk-openapi-fuzz-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)
SETTINGS = load_settings(
    env={
        "HOME": str(_DIR),
        "XDG_DATA_HOME": str(_DIR / "data"),
        "XDG_CONFIG_HOME": str(_DIR / "config"),
    },
    cwd=_DIR,
)
APP = create_app(SETTINGS)
# The document straight from the app (what /openapi.json serves): loading it over ASGI would start
# the app's lifespan at collection time, before any test runs.
# An explicit Config: nothing is read from a schemathesis.toml that happens to be around.
schema = schemathesis.openapi.from_dict(APP.openapi(), config=schemathesis.Config())
schema.app = APP  # requests go to the app in-process, as with schemathesis.openapi.from_asgi


def _token() -> str:
    # Written by the app's first start (the bootstrap key, with admin:platform).
    return SETTINGS.admin_token_path.read_text().strip()


@pytest.fixture(scope="module", autouse=True)
def _bootstrapped() -> Iterator[None]:
    """One start and stop of the app first: it writes the bootstrap key the cases send."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from starlette.testclient import TestClient
    with TestClient(APP):
        pass
    yield
    shutil.rmtree(_DIR, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=8,
    derandomize=True,  # the same cases on every run: a failure is reproducible, never flaky
    deadline=None,  # a loaded 2-core machine is slow now and then; speed is not what is tested
    database=None,  # nothing written to .hypothesis/
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    if case.headers is None or "Authorization" not in case.headers:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {_token()}"}
    case.call_and_validate(checks=CHECKS_RUN)

"""The interactive API docs answer anyone, so they are served only when AGENT_SDK_DOCS_ENABLED
is on, which `agent-sdk up` (a developer's own machine) makes the default and `serve` does not;
with them off, /openapi.json needs a credential like the rest of the API (issue 10, item 7)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_process import ServeProcess, child_env, migrate

from agent_sdk.config import Settings, load_settings
from agent_sdk.errors import ConfigError
from agent_sdk.hosts.up import local_defaults
from agent_sdk.server.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

DOC_PATHS = ["/docs", "/redoc", "/docs/oauth2-redirect"]
# What a scanner tries next when /docs is gone.
PROBES = [
    *DOC_PATHS, "/docs/", "/redoc/", "/DOCS", "/Docs", "//docs", "/v1/docs", "/docs;x",
    "/docs%2F", "/docs/index.html", "/swagger", "/swagger-ui.html", "/openapi.yaml",
    "/v1/openapi.json", "/openapi.json/", "/OPENAPI.JSON", "/docs/../openapi.json",
    "/%6Fpenapi.json", "/redoc?x=1", "/api/docs", "/docs/oauth2-redirect?code=x&state=y",
]  # fmt: skip


def settings_with(env: dict[str, str], **extra: str) -> Settings:
    full = {**env, **{f"AGENT_SDK_{k.upper()}": v for k, v in extra.items()}}
    return load_settings(env=full, cwd=Path.cwd())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def leaks_docs(answer: httpx.Response) -> bool:
    """A docs page (HTML) or the document itself, rather than a problem answer."""
    kind = answer.headers.get("content-type", "")
    if kind.startswith("text/html"):
        return True
    return kind == "application/json" and "openapi" in answer.json()


def test_docs_are_off_by_default_and_the_document_needs_a_credential(
    isolated_env: dict[str, str],
) -> None:
    settings = settings_with(isolated_env)
    assert settings.server.docs_enabled is None
    with TestClient(create_app(settings)) as client:
        root = bearer(settings.admin_token_path.read_text().strip())
        for path in PROBES:
            for method in ("GET", "HEAD"):
                answer = client.request(method, path)
                assert answer.status_code in (401, 404, 405), (method, path, answer.status_code)
                assert not leaks_docs(answer), (method, path)
                # Off means off with a credential too (which may fetch the document, below).
                answer = client.request(method, path, headers=root)
                assert not answer.headers["content-type"].startswith("text/html"), path
        # The document: 401 (the same problem as every route) without a valid credential.
        forged = "asdk_" + "A" * 16 + "_" + "B" * 38
        for headers in ({}, bearer(forged), bearer(""), {"Authorization": "Basic eDp5"},
                        {"X-API-Key": forged}, bearer("x" * 10_000)):  # fmt: skip
            answer = client.get("/openapi.json", headers=headers)
            assert answer.status_code == 401, headers
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert not leaks_docs(answer)
        # Any credential will do, whatever its scopes or org: it is the API's shape, not data.
        made = client.post("/v1/admin/orgs", json={"id": "other"}, headers=root)
        assert made.status_code == 201
        viewer = client.post("/v1/admin/api-keys", json={"name": "v", "role": "viewer"},
                             headers={**root, "X-Org-Id": "other"}).json()["token"]  # fmt: skip
        doc = client.get("/openapi.json", headers=bearer(viewer)).json()
        assert doc["info"]["title"] == "agent-sdk" and "/v1/runs" in doc["paths"]
        assert "/openapi.json" not in doc["paths"]
        # ... still subject to the key's own network limits.
        body = {"name": "f", "role": "viewer", "ip_allowlist": ["203.0.113.0/24"]}
        fenced = client.post("/v1/admin/api-keys", headers=root, json=body).json()["token"]
        assert client.get("/openapi.json", headers=bearer(fenced)).status_code == 403


def test_docs_when_enabled(isolated_env: dict[str, str]) -> None:
    settings = settings_with(isolated_env, docs_enabled="true")
    with TestClient(create_app(settings)) as client:
        for path in DOC_PATHS:
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert answer.headers["content-type"].startswith("text/html")
        doc: dict[str, Any] = client.get("/openapi.json").json()
        assert "/v1/runs" in doc["paths"]
        # The docs open the document, not the data: the API still needs a credential.
        assert client.get("/v1/runs").status_code == 401


def test_the_setting(isolated_env: dict[str, str]) -> None:
    for raw, parsed in [("", None), (" ", None), ("true", True), ("1", True), ("on", True),
                        ("false", False), ("0", False), ("OFF", False)]:  # fmt: skip
        assert settings_with(isolated_env, docs_enabled=raw).server.docs_enabled is parsed
    for bad in ("maybe", "2", "yes please", "tru"):
        with pytest.raises(ConfigError, match="AGENT_SDK_DOCS_ENABLED"):
            settings_with(isolated_env, docs_enabled=bad)
    # `up` turns them on unless the variable (or a config file) chose.
    assert local_defaults(settings_with(isolated_env)).server.docs_enabled is True
    off = settings_with(isolated_env, docs_enabled="false")
    assert local_defaults(off).server.docs_enabled is False
    Path("agent-sdk.toml").write_text("docs_enabled = false\n")
    assert local_defaults(settings_with(isolated_env)).server.docs_enabled is False


@pytest.mark.slow
def test_up_serves_the_docs_and_serve_does_not(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    def env(name: str, **extra: str) -> dict[str, str]:
        return child_env(data_dir=str(tmp_path / name), **extra)

    served = env("serve")
    migrate(served)
    with (
        ServeProcess(env("up"), tmp_path / "up.log", command="up") as up,
        ServeProcess(
            env("up-off", docs_enabled="false"), tmp_path / "up-off.log", command="up"
        ) as up_off,
        ServeProcess(served, tmp_path / "serve.log") as serve,
    ):
        assert httpx.get(up.url + "/docs").status_code == 200
        assert httpx.get(up.url + "/openapi.json").status_code == 200
        assert f"API docs: {up.url}/docs" in up.output
        for srv in (up_off, serve):
            for path in DOC_PATHS:
                assert httpx.get(srv.url + path).status_code == 404, (srv.command, path)
            assert httpx.get(srv.url + "/openapi.json").status_code == 401
            assert httpx.get(srv.url + "/openapi.json",
                             headers=bearer(srv.token)).status_code == 200  # fmt: skip
            assert "API docs" not in srv.output
    assert os.environ.get("AGENT_SDK_DOCS_ENABLED") is None  # nothing leaked into the test

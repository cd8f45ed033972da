"""Helpers for the manager tests: hand-built manifests, settings, an app with its runner.

Manifests are built from the pydantic models so the planner tests do not depend
on the compiler; the media-server example is compiled where a real project
matters. The app is driven in-process with ``httpx.AsyncClient`` over
``httpx.ASGITransport``, its lifespan entered by hand (ASGITransport does not run
it) so the update runner really runs. Async tests use anyio's pytest plugin.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from manager_app.app import create_app
from manager_app.deployers import Deployer
from manager_app.settings import Settings
from mora_dsl.manifest import (
    Edge,
    Graph,
    Input,
    Manifest,
    Port,
    Project,
    Ref,
    Secret,
    Service,
    Span,
    TypeSpec,
)

REPO = Path(__file__).resolve().parents[2]
MEDIA_SERVER = REPO / "examples" / "media-server"
SPAN = Span(file="main.mora", line=1, column=1, end_line=1, end_column=2)
PASSWORD = "correct horse battery staple"
TOKEN = "test-api-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
MEDIA_PARAMS = {"domain": "home.example.com", "media_path": "/srv/media"}


# --------------------------------------------------------------------------- manifests


def inp(
    input_id: str,
    when: str = "before_deploy",
    used_by: Iterable[str] = (),
    type: str = "string",
    optional: bool = False,
    title: str | None = None,
) -> Input:
    service, name = input_id.split(".", 1)
    return Input(
        id=input_id, name=name, service=service, type=TypeSpec(name=type),  # type: ignore[arg-type]
        title=title or f"The {name} of {service}", when=when,  # type: ignore[arg-type]
        when_inferred=False, used_by=list(used_by), optional=optional, span=SPAN,
    )


def build_manifest(
    services: dict[str, Iterable[str]],
    inputs: Iterable[Input] = (),
    *,
    env: dict[str, dict[str, Any]] | None = None,
    line: int = 1,
) -> Manifest:
    """Services (name → dependencies by reference), inputs; each input used in its users' env."""
    inputs = list(inputs)
    span = SPAN.model_copy(update={"line": line})
    env = env or {}
    svcs = []
    for name, deps in services.items():
        environment: dict[str, Any] = dict(env.get(name, {}))
        for i in inputs:
            if name in i.used_by:
                environment[i.id.replace(".", "_").upper()] = Ref(ref=f"input:{i.id}")
        for dep in deps:
            environment[f"{dep.upper()}_URL"] = Ref(ref=f"service:{dep}.internal_url")
        svcs.append(
            Service(
                name=name, image=f"example/{name}:1", ports=[Port(name="http", port=8080, span=span)],
                environment=environment, inputs=[i.id for i in inputs if i.service == name],
                span=span,
            )
        )
    edges = [
        Edge(service=name, on=dep, reason="reference", span=span)
        for name, deps in services.items() for dep in deps
    ]
    manifest = Manifest(
        project=Project(name="lab", namespace="lab", span=span),
        services=svcs, inputs=inputs, graph=Graph(edges=edges),
    )
    from manager_app.planner import waves

    return manifest.model_copy(update={"graph": Graph(edges=edges, waves=waves(manifest))})


def manifest_with_secret() -> Manifest:
    """db and app; app has a generated password (``app.db_password``) in its env."""
    base = build_manifest({"db": [], "app": ["db"]})
    secret = Secret(id="app.db_password", name="db_password", owner="app", kind="password",
                    args={"length": 24}, span=SPAN)
    app = base.service("app")
    env = {**app.environment, "DB_PASSWORD": Ref(ref="secret:app.db_password")}
    services = [s if s.name != "app" else s.model_copy(update={"environment": env})
                for s in base.services]
    return base.model_copy(update={"secrets": [secret], "services": services})


@functools.cache
def media_server() -> Manifest:
    from mora_dsl import compile_project

    return compile_project(MEDIA_SERVER).validated()


# --------------------------------------------------------------------------- app


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "dry_run": True,
        "admin_password": PASSWORD,
        "api_token": TOKEN,
        "params": dict(MEDIA_PARAMS),
        "debounce_seconds": 0.05,
        "max_debounce_seconds": 1.0,
        "retry_backoff_seconds": 0.01,
    }
    values.update(overrides)
    return Settings(**values)


def body_of(manifest: Manifest, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body of ``POST /api/v1/manifests``."""
    return {"manifest": manifest.model_dump(mode="json"), "params": params or {}}


async def post_manifest(
    client: httpx.AsyncClient, manifest: Manifest, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Send ``manifest`` as `mora up` does; it must be accepted (201). Returns the answer."""
    response = await client.post("/api/v1/manifests", json=body_of(manifest, params), headers=BEARER)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


@asynccontextmanager
async def running(
    settings: Settings, deployer: Deployer | None = None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its runner started, and a client (no credentials by default)."""
    app = create_app(settings, deployer=deployer)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://manager.test") as client:
            yield app, client
    app.state.store.close()

"""The REST API in-process (httpx over ASGI), with the real runner and the dry-run deployer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from manager_helpers import (
    BEARER,
    MEDIA_PARAMS,
    build_manifest,
    inp,
    make_settings,
    media_server,
    post_manifest,
    running,
)

from manager_app.app import create_app
from manager_app.settings import Settings
from mora_dsl.manifest import Manifest

pytestmark = pytest.mark.anyio

SECRET_ANSWER = "sup3r-s3cret-api-key-never-shown"
#: Routes reachable without credentials, on purpose.
PUBLIC = {"/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/api/v1/login"}


def is_public(path: str) -> bool:
    """Open on purpose: health, API docs, the login (API and page), static assets."""
    return path in PUBLIC or path.rstrip("/").endswith("/login") or path.startswith("/static")


def all_routes(app: FastAPI) -> list[tuple[str, set[str] | None]]:
    """Every route with its full path; recent FastAPI keeps included routers as one entry."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        return [(r.path, getattr(r, "methods", None)) for r in app.routes]  # type: ignore[attr-defined]
    return [(c.path or "", c.methods) for c in iter_route_contexts(app.routes)]


def small_manifest() -> Manifest:
    return build_manifest(
        {"db": [], "app": ["db"]},
        [
            inp("app.admin_email", "before_deploy", used_by=["app"], type="email",
                title="Administrator e-mail"),
            inp("app.port", "before_deploy", used_by=["app"], type="port", title="Listen port"),
            inp("db.password", "after_start", used_by=["app"], type="secret", title="DB password"),
        ],
    )


# --------------------------------------------------------------------------- auth on every route


async def test_healthz_needs_no_credentials(settings: Settings) -> None:
    async with running(settings) as (_, client):
        response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_every_route_but_the_public_ones_needs_credentials(settings: Settings) -> None:
    async with running(settings) as (app, client):
        checked = 0
        paths = set()
        for path, route_methods in all_routes(app):
            paths.add(path)
            if is_public(path):
                continue
            methods = sorted(route_methods or {"GET"})
            url = path.replace("{", "").replace("}", "")  # any value for path params
            for method in methods:
                if method == "HEAD":
                    continue
                response = await client.request(method, url)
                if path.startswith("/api/"):
                    assert response.status_code == 401, f"{method} {path}: {response.status_code}"
                else:  # a wizard page may send the browser to its login page instead
                    assert response.status_code == 401 or (
                        response.status_code in (302, 303, 307)
                        and "login" in response.headers.get("location", "")
                    ), f"{method} {path}: {response.status_code}"
                checked += 1
        assert checked >= 8
        assert {"/api/v1/plan", "/api/v1/manifests", "/api/v1/answers/{input_id}"} <= paths


async def test_bearer_token_and_wrong_token(settings: Settings) -> None:
    async with running(settings) as (_, client):
        assert (await client.get("/api/v1/updates", headers=BEARER)).status_code == 200
        wrong = {"Authorization": "Bearer nope"}
        response = await client.get("/api/v1/updates", headers=wrong)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


async def test_openapi_documents_the_api(settings: Settings) -> None:
    async with running(settings) as (_, client):
        spec = (await client.get("/openapi.json")).json()
    assert {"/api/v1/manifests", "/api/v1/plan", "/api/v1/answers/{input_id}",
            "/api/v1/updates", "/healthz"} <= set(spec["paths"])
    put = spec["paths"]["/api/v1/answers/{input_id}"]["put"]
    assert "requestBody" in put and "422" in put["responses"]


# --------------------------------------------------------------------------- manifests and plan


async def test_plan_before_any_manifest_is_404_with_a_hint(settings: Settings) -> None:
    async with running(settings) as (_, client):
        response = await client.get("/api/v1/plan", headers=BEARER)
    assert response.status_code == 404
    assert "mora up" in response.json()["detail"]


async def test_posting_a_manifest_plans_and_deploys_the_first_wave(settings: Settings) -> None:
    async with running(settings) as (app, client):
        accepted = await post_manifest(client, media_server(), MEDIA_PARAMS)
        assert accepted["changes"]["added_services"][0] == "janitorr"
        assert accepted["update_id"] is not None
        await app.state.runner.wait_idle(60)
        plan = (await client.get("/api/v1/plan", headers=BEARER)).json()
    assert plan["project"] == "media-server"
    assert plan["waves"] == media_server().graph.waves
    states = {s["name"]: s["state"] for s in plan["services"]}
    assert set(plan["services"][0]) >= {"name", "state"}
    # Waves 0 and 1 run (wave 1 followed by itself), jellyseerr too; janitorr needs the keys.
    assert states["lldap"] == states["sonarr"] == states["jellyseerr"] == "running"
    assert states["janitorr"] == "waiting_for_input"
    assert [i["id"] for i in plan["pending_inputs"]] == [
        "lldap.admin_email", "jellyfin.api_key", "jellyseerr.api_key",
    ]


async def test_the_wizard_flow_reaches_every_service_running(settings: Settings) -> None:
    async with running(settings) as (app, client):
        await post_manifest(client, media_server(), MEDIA_PARAMS)
        await app.state.runner.wait_idle(60)
        for input_id, value in [
            ("lldap.admin_email", "admin@example.com"),
            ("jellyfin.api_key", SECRET_ANSWER),
            ("jellyseerr.api_key", SECRET_ANSWER + "-2"),
        ]:
            response = await client.put(f"/api/v1/answers/{input_id}", json={"value": value},
                                        headers=BEARER)
            assert response.status_code == 200, response.text
        await app.state.runner.wait_idle(60)
        plan = (await client.get("/api/v1/plan", headers=BEARER)).json()
        updates = (await client.get("/api/v1/updates", headers=BEARER)).json()["updates"]
    assert plan["complete"] is True
    assert {s["state"] for s in plan["services"]} == {"running"}
    assert all(u["status"] == "succeeded" for u in updates)
    assert "janitorr" in updates[0]["deploy"]
    assert SECRET_ANSWER not in json.dumps(plan) + json.dumps(updates)


# --------------------------------------------------------------------------- answers


async def test_answers_are_validated_by_type_with_a_positioned_message(settings: Settings) -> None:
    async with running(settings) as (_, client):
        await post_manifest(client, small_manifest())
        bad_email = await client.put(
            "/api/v1/answers/app.admin_email", json={"value": "not-an-address"}, headers=BEARER
        )
        bad_port = await client.put(
            "/api/v1/answers/app.port", json={"value": "99999"}, headers=BEARER
        )
        good = await client.put(
            "/api/v1/answers/app.port", json={"value": " 8443 "}, headers=BEARER
        )
        status = (await client.get("/api/v1/answers/app.port", headers=BEARER)).json()
    assert bad_email.status_code == 422
    [error] = bad_email.json()["detail"]
    assert error["loc"] == ["body", "value"]
    assert error["msg"] == 'Administrator e-mail: "not-an-address" is not an e-mail address'
    assert bad_port.status_code == 422
    assert "not a port" in bad_port.json()["detail"][0]["msg"]
    assert good.status_code == 200 and good.json()["changed"] is True
    assert status == {
        "id": "app.port", "title": "Listen port", "type": "port", "answered": True,
        "secret": False, "value": "8443", "updated_at": status["updated_at"],
    }


def test_answers_are_stored_as_the_stack_writes_a_value() -> None:
    """A list answered ``a, b`` reaches the service as a list value does: compact JSON."""
    from manager_app.core import validate_answer
    from mora_dsl.manifest import TypeSpec
    from mora_dsl.values import to_text

    def typed(name: str, item: str | None = None) -> Any:
        spec = TypeSpec(name=name, item=TypeSpec(name=item) if item else None)  # type: ignore[arg-type]
        return inp("app.value").model_copy(update={"type": spec})

    assert validate_answer(typed("list", "string"), "a, b") == to_text(["a", "b"]) == '["a","b"]'
    assert validate_answer(typed("map", "int"), '{"k": 1}') == '{"k":1}'
    assert validate_answer(typed("bool"), "yes") == "true"
    assert validate_answer(typed("port"), " 8443 ") == "8443"


async def test_a_secret_answer_is_never_echoed(settings: Settings) -> None:
    async with running(settings) as (app, client):
        await post_manifest(client, small_manifest())
        before = (await client.get("/api/v1/answers/db.password", headers=BEARER)).json()
        put = await client.put(
            "/api/v1/answers/db.password", json={"value": SECRET_ANSWER}, headers=BEARER
        )
        after = await client.get("/api/v1/answers/db.password", headers=BEARER)
        empty = await client.put("/api/v1/answers/db.password", json={"value": ""}, headers=BEARER)
        # A malformed body must not be echoed either (FastAPI's default would).
        malformed = await client.put(
            "/api/v1/answers/db.password", json={"value": [SECRET_ANSWER]}, headers=BEARER
        )
        await app.state.runner.wait_idle(30)
        history = await client.get("/api/v1/updates", headers=BEARER)
    assert before["answered"] is False and before["secret"] is True
    assert put.status_code == 200
    assert after.json()["answered"] is True and after.json()["value"] is None
    assert empty.status_code == 422 and empty.json()["detail"][0]["msg"] == "DB password: enter a value"
    assert malformed.status_code == 422
    for response in (put, after, empty, malformed, history):
        assert SECRET_ANSWER not in response.text


async def test_unknown_inputs_are_404(settings: Settings) -> None:
    async with running(settings) as (_, client):
        await post_manifest(client, small_manifest())
        response = await client.put("/api/v1/answers/app.nope", json={"value": "x"}, headers=BEARER)
    assert response.status_code == 404 and "app.nope" in response.json()["detail"]


async def test_the_same_answer_twice_does_not_trigger_another_update(settings: Settings) -> None:
    async with running(settings) as (app, client):
        await post_manifest(client, small_manifest())
        await app.state.runner.wait_idle(30)
        first = await client.put("/api/v1/answers/app.port", json={"value": "80"}, headers=BEARER)
        await app.state.runner.wait_idle(30)
        count = len(app.state.store.updates())
        again = await client.put("/api/v1/answers/app.port", json={"value": "80"}, headers=BEARER)
        await app.state.runner.wait_idle(30)
        assert first.json()["changed"] is True and again.json()["changed"] is False
        assert len(app.state.store.updates()) == count


# --------------------------------------------------------------------------- updates and removals


async def test_trigger_an_update_and_read_the_history(settings: Settings) -> None:
    async with running(settings) as (app, client):
        await post_manifest(client, small_manifest())
        await app.state.runner.wait_idle(30)
        queued = await client.post("/api/v1/updates", json={"reason": "retry"}, headers=BEARER)
        assert queued.status_code == 202
        await app.state.runner.wait_idle(30)
        history = (await client.get("/api/v1/updates?limit=1", headers=BEARER)).json()["updates"]
    assert history[0]["id"] == queued.json()["update_id"]
    assert history[0]["triggers"] == ["retry"] and history[0]["status"] == "succeeded"
    assert history[0]["started_at"] and history[0]["finished_at"]


async def test_a_removed_service_stays_until_the_admin_confirms(settings: Settings) -> None:
    three = build_manifest({"db": [], "app": ["db"], "extra": []})
    two = build_manifest({"db": [], "app": ["db"]})
    async with running(settings) as (app, client):
        await post_manifest(client, three)
        await app.state.runner.wait_idle(30)
        accepted = await post_manifest(client, two)
        assert accepted["changes"]["removed_services"] == ["extra"]
        await app.state.runner.wait_idle(30)
        plan = (await client.get("/api/v1/plan", headers=BEARER)).json()
        assert plan["pending_removals"] == ["extra"]
        assert app.state.store.states()["extra"] == "running"
        deployed = app.state.store.last_effective()
        assert "extra" in {s.name for s in deployed.services}

        missing = await client.post("/api/v1/removals/nope/confirm", headers=BEARER)
        assert missing.status_code == 404
        confirmed = await client.post("/api/v1/removals/extra/confirm", headers=BEARER)
        assert confirmed.status_code == 200
        await app.state.runner.wait_idle(30)
        plan = (await client.get("/api/v1/plan", headers=BEARER)).json()
        assert plan["pending_removals"] == []
        assert "extra" not in app.state.store.states()
        assert "extra" not in {s.name for s in app.state.store.last_effective().services}


async def test_an_unchanged_manifest_triggers_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running(settings) as (app, client):
        await post_manifest(client, small_manifest())
        await app.state.runner.wait_idle(30)
        count = len(app.state.store.updates())
        accepted = await post_manifest(client, small_manifest())
        assert accepted["changes"]["added_services"] == []
        assert len(app.state.store.updates()) == count


def test_api_routes_live_under_api_v1(settings: Settings) -> None:
    app = create_app(settings)
    paths = {path for path, _ in all_routes(app) if path.startswith("/api")}
    assert paths and all(p.startswith("/api/v1/") for p in paths)
    app.state.store.close()

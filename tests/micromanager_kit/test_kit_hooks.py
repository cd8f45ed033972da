"""Hooks through the sidecar app, against the in-process manager stand-in."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from micromanager_kit import Field, HookContext, HookError, Micromanager, NotReady
from micromanager_kit import contract as c
from micromanager_kit.testing import Harness, HookFailed, hook_context

SECRET = "jellyfin-api-key-0123456789abcdef"
PASSWORD = "ldap-admin-password-xyz"
KNOWN = {"param:domain": "home.example.com", "input:jellyfin.api_key": SECRET,
         "secret:ldap_admin_password": PASSWORD, "service:jellyfin.url": "https://watch.home.example.com"}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def demo() -> Micromanager:
    """A micromanager for the example's jellyfin service, exercising the whole API."""
    mm = Micromanager("jellyfin")

    @mm.before_deploy
    def sync_hook(ctx: HookContext) -> str:
        answer = ctx.request_input("server_name", "Server name", help="shown to viewers")
        # jellyfin does not reference param:domain: the manager does not send it
        assert ctx.param("domain", None) is None
        return f"url {ctx.value('service:jellyfin.url')}, server name {answer}"

    @mm.after_start()
    async def async_hook(ctx: HookContext) -> dict[str, Any]:
        await asyncio.sleep(0)
        ctx.report("api_key", "created-by-the-sidecar-0001")
        ctx.note_change("created an API key")
        return {"key_is_secret": ctx.config.is_secret("input:jellyfin.api_key"),
                "api_key_matches": ctx.input("api_key") == SECRET}

    @mm.inputs_answered
    def fails_on_purpose(ctx: HookContext) -> None:
        ctx.report("api_key", "reported-before-the-failure")
        raise HookError(f"the server refused key {ctx.input('api_key')}", hint="create a new key",
                        retryable=False)

    @mm.reconfigure
    def crashes(ctx: HookContext) -> None:
        raise ValueError(f"unexpected answer containing {SECRET}\nsecond line")

    @mm.health
    async def unhealthy(ctx: HookContext) -> bool:
        return False

    @mm.action("rename", title="Rename", fields=[
        Field("name", "New name"), Field("count", type="int", required=False, default=1),
        Field("token", type="secret", required=False),
    ])
    def rename(ctx: HookContext) -> dict[str, Any]:
        if ctx.values["name"] == "boom":
            raise RuntimeError(f"token {ctx.values['token']} rejected")
        return {"name": ctx.values["name"], "count": ctx.values["count"]}

    @mm.action("wait", title="Needs a value")
    def wait(ctx: HookContext) -> None:
        ctx.value("secret:jellyfin.nothing")

    return mm


@pytest.fixture
def h(media_manifest):
    return Harness(demo(), media_manifest, "jellyfin", KNOWN)


def test_sync_hook_requests_an_input_and_sees_its_answer(h):
    async def scenario():
        async with h:
            first = await h.hook("before_deploy")
            h.manager.values["input:jellyfin.server_name"] = "Cinema"
            second = await h.hook("before_deploy")
            return first, second

    first, second = run(scenario())
    assert first.message == "url https://watch.home.example.com, server name None"
    assert first.requested_inputs == ["server_name"]
    assert h.manager.requested_inputs["jellyfin.server_name"].title == "Server name"
    assert second.message == "url https://watch.home.example.com, server name Cinema"


def test_async_hook_reports_a_value_that_lands_in_the_manager(h):
    async def scenario():
        async with h:
            return await h.hook("after_start")

    result = run(scenario())
    assert result.data == {"key_is_secret": True, "api_key_matches": True}
    assert result.reported == ["api_key"] and result.changes == ["created an API key"]
    assert h.manager.values["input:jellyfin.api_key"] == "created-by-the-sidecar-0001"
    assert len(h.manager.stored_reports) == 1


def test_a_hook_error_is_structured_and_its_reports_still_land(h):
    async def scenario():
        async with h:
            with pytest.raises(HookFailed) as failed:
                await h.hook("inputs_answered", answered=["jellyfin.api_key"])
            return failed.value

    failed = run(scenario())
    assert failed.status == 500
    assert failed.body == c.ErrorBody(detail="the server refused key ********", code="hook_failed",
                                      retryable=False, hook="inputs_answered", hint="create a new key")
    assert h.manager.values["input:jellyfin.api_key"] == "reported-before-the-failure"


def test_an_unexpected_exception_is_one_line_without_secrets(h, caplog):
    caplog.set_level(logging.DEBUG)

    async def scenario():
        async with h:
            with pytest.raises(HookFailed) as failed:
                await h.hook("reconfigure")
            return failed.value

    failed = run(scenario())
    assert failed.body.code == "hook_failed" and failed.body.retryable
    assert failed.body.detail == "reconfigure failed: ValueError: unexpected answer containing ********"
    assert "Traceback" not in failed.body.model_dump_json()
    assert SECRET not in caplog.text and PASSWORD not in caplog.text
    assert "test_kit_hooks.py" in caplog.text  # the frames are logged for the developer


def test_health_and_missing_values(h):
    async def scenario():
        async with h:
            health = await h.health()
            with pytest.raises(HookFailed) as waiting:
                await h.action("wait", {})
            return health, waiting.value

    health, waiting = run(scenario())
    assert health == c.HealthResult(healthy=False)
    assert waiting.status == 503 and waiting.body.code == "not_ready"
    assert "not in this service's config" in waiting.body.detail


def test_actions_parse_typed_fields_and_refuse_bad_ones(h):
    async def scenario():
        async with h:
            ok = await h.action("rename", {"name": "Cinema", "count": "3"})
            defaulted = await h.action("rename", {"name": "Cinema"})
            with pytest.raises(HookFailed) as bad:
                await h.action("rename", {"count": "three", "extra": 1})
            with pytest.raises(HookFailed) as unknown:
                await h.action("nope", {})
            with pytest.raises(HookFailed) as crashed:
                await h.action("rename", {"name": "boom", "token": "tok-secret-999"})
            return ok, defaulted, bad.value, unknown.value, crashed.value

    ok, defaulted, bad, unknown, crashed = run(scenario())
    assert ok.data == {"name": "Cinema", "count": 3} and ok.hook == "action:rename"
    assert defaulted.data["count"] == 1
    assert bad.status == 422 and set(bad.body.fields) == {"name", "count", "extra"}
    assert bad.body.fields["name"] == "required"
    assert "whole number" in bad.body.fields["count"] and "three" not in bad.body.fields["count"]
    assert unknown.status == 404 and unknown.body.code == "not_found"
    assert "tok-secret-999" not in crashed.body.model_dump_json()


def test_calls_need_the_hook_token_the_version_and_the_service(h):
    async def scenario():
        async with h:
            no_token = await h.http.post(c.PATH_HOOK_AFTER_START, json={"service": "jellyfin"})
            old = await h.post(c.PATH_HOOK_AFTER_START,
                               c.HookCall(service="jellyfin", contract_version=0))
            other = await h.post(c.PATH_HOOK_AFTER_START, c.HookCall(service="sonarr"))
            garbage = await h.http.post(c.PATH_HOOK_AFTER_START, json={"values": PASSWORD},
                                        headers={"Authorization": f"Bearer {h.hook_token}"})
            live = await h.http.get(c.PATH_HEALTHZ)
            openapi = (await h.http.get("/openapi.json")).json()
            return no_token, old, other, garbage, live, openapi

    no_token, old, other, garbage, live, openapi = run(scenario())
    assert no_token.status_code == 401 and no_token.json()["code"] == "unauthorized"
    assert old.status_code == 409 and old.json()["code"] == "contract_version"
    assert other.status_code == 422
    assert garbage.status_code == 422 and PASSWORD not in garbage.text
    assert live.json() == {"status": "ok", "micromanager": "jellyfin", "contract_version": 1}
    assert {c.PATH_HOOK_AFTER_START, c.PATH_HOOK_HEALTH, c.PATH_HOOK_ACTION} <= set(openapi["paths"])


def test_registration_lists_hooks_and_actions(h):
    async def scenario():
        async with h:
            return h.manager.registrations["jellyfin"]

    registration = run(scenario())
    assert registration.hooks == sorted(c.LIFECYCLE_HOOKS)
    assert [a.name for a in registration.actions] == ["rename", "wait"]
    assert registration.actions[0].fields[2].secret


def test_a_hook_without_implementation_is_a_no_op(media_manifest):
    async def scenario():
        async with Harness(Micromanager("jellyfin"), media_manifest, "jellyfin", KNOWN) as h:
            return await h.hook("after_start"), await h.health()

    result, health = run(scenario())
    assert result.changes == [] and "no after_start hook" in (result.message or "")
    assert health.healthy


def test_decorators_refuse_a_second_hook_and_bad_names():
    mm = Micromanager("x")
    mm.health(lambda ctx: True)
    with pytest.raises(ValueError, match="already registered"):
        mm.health(lambda ctx: True)
    with pytest.raises(ValueError, match="identifier"):
        mm.action("add person", title="x")


def test_context_lookups():
    config = c.ConfigResponse(service="lldap", values={
        "secret:lldap.jwt_secret": "own-secret", "secret:ldap_admin_password": "project-secret",
        "input:lldap.admin_email": "a@b.example", "service:lldap.host": "lldap.media.svc",
    }, secret_keys=["secret:lldap.jwt_secret", "secret:ldap_admin_password"],
        missing=["param:domain"], ports={"ldap": 3890})
    ctx = hook_context("ldap", config)
    assert ctx.secret("jwt_secret") == "own-secret"
    assert ctx.secret("ldap_admin_password") == "project-secret"
    assert ctx.secret("secret:lldap.jwt_secret") == "own-secret"
    assert ctx.input("admin_email") == ctx.input("lldap.admin_email") == "a@b.example"
    assert ctx.host == "lldap.media.svc" and ctx.port("ldap") == 3890
    assert ctx.port("http", 80) == 80
    with pytest.raises(NotReady, match="not known yet"):
        ctx.param("domain")
    assert "own-secret" not in repr(ctx.config) and "a@b.example" in repr(ctx.config)


def test_referenced_peer_values_all_none_some_or_not_yet():
    config = c.ConfigResponse(service="sonarr", values={
        "service:prowlarr.internal_url": "http://prowlarr:9696", "secret:prowlarr.api_key": "k" * 32,
        "service:qbittorrent.internal_url": "http://qbittorrent:8080",
    }, secret_keys=["secret:prowlarr.api_key"], missing=["secret:radarr.api_key"])
    ctx = hook_context("arr", config)
    assert ctx.referenced("service:prowlarr.internal_url", "secret:prowlarr.api_key") is True
    assert ctx.referenced("service:jellyfin.internal_url", "secret:jellyfin.api_key") is False
    with pytest.raises(NotReady, match=r"secret:radarr\.api_key not known yet"):
        ctx.referenced("service:radarr.internal_url", "secret:radarr.api_key")
    with pytest.raises(HookError) as part:
        ctx.referenced("service:qbittorrent.internal_url", "secret:qbittorrent.webui_password")
    assert part.value.message == ("sonarr references only part of qbittorrent.internal_url, "
                                  "qbittorrent.webui_password")
    assert part.value.retryable is False

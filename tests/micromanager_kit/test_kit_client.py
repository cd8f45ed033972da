"""The sidecar → manager client: token scoping, idempotent reports, retries across a restart.

The restart tests serve the stand-in manager with a real uvicorn on a free
loopback port, stop it and start it again on the same port; the stand-in's
state (its "database") lives on the object, so it survives like the real
manager's store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import pytest
from kit_peers import Served, free_port

from micromanager_kit import ManagerError
from micromanager_kit import contract as c
from micromanager_kit.client import ManagerClient
from micromanager_kit.testing import StandInManager

KEY = "jellyfin-created-key-abcdef0123"


@pytest.fixture
def stand_in(media_manifest) -> StandInManager:
    return StandInManager(media_manifest, {"param:domain": "home.example.com",
                                           "secret:ldap_admin_password": "pw-0123456789"})


def in_process(stand_in: StandInManager, token: str, service: str, **kw: Any) -> ManagerClient:
    return ManagerClient("http://manager", token, service,
                         transport=httpx.ASGITransport(app=stand_in.app()), base_delay=0, **kw)


def test_tokens_are_scoped_to_their_service(stand_in):
    jellyfin = stand_in.issue_token("jellyfin")

    async def scenario():
        own = in_process(stand_in, jellyfin, "jellyfin")
        posing = in_process(stand_in, jellyfin, "sonarr")  # jellyfin's token, sonarr's paths
        nobody = in_process(stand_in, "made-up", "jellyfin")
        outcomes: dict[str, Any] = {}
        outcomes["config"] = await own.read_config()
        for name, call in {
            "other_service_config": posing.read_config(),
            "other_service_report": posing.report({"api_key": "x"}),
            "other_input": own.report({"sonarr.api_key": "x"}),
            "out_of_scope_key": own.read_config(keys=["secret:ldap_admin_password"]),
            "unknown_token": nobody.read_config(),
            "unknown_input": own.report({"nope": "x"}),
        }.items():
            try:
                await call
            except ManagerError as err:
                outcomes[name] = (err.status, err.code)
        outcomes["in_scope_key"] = await own.read_config(keys=["input:jellyfin.api_key"])
        for client in (own, posing, nobody):
            await client.aclose()
        return outcomes

    out = run(scenario())
    assert "secret:ldap_admin_password" not in out["config"].values
    assert out["config"].missing == ["input:jellyfin.api_key", "secret:jellyfin.admin_password",
                                     "service:jellyfin.host",
                                     "service:jellyfin.internal_url", "service:jellyfin.public_host",
                                     "service:jellyfin.url"]
    assert out["other_service_config"] == (403, "forbidden")
    assert out["other_service_report"] == (403, "forbidden")
    assert out["other_input"] == (403, "forbidden")
    assert out["out_of_scope_key"] == (403, "forbidden")
    assert out["unknown_token"] == (401, "unauthorized")
    assert out["unknown_input"] == (422, "invalid")
    assert out["in_scope_key"].missing == ["input:jellyfin.api_key"]
    assert stand_in.stored_reports == []


def test_reports_are_idempotent(stand_in):
    token = stand_in.issue_token("jellyfin")

    async def scenario():
        async with in_process(stand_in, token, "jellyfin") as client:
            first = await client.report({"api_key": KEY}, idempotency_key="k1")
            replay = await client.report({"api_key": KEY}, idempotency_key="k1")
            same_value = await client.report({"jellyfin.api_key": KEY}, idempotency_key="k2")
            with pytest.raises(ManagerError) as conflict:
                await client.report({"api_key": "another"}, idempotency_key="k1")
            return first, replay, same_value, conflict.value

    first, replay, same_value, conflict = run(scenario())
    assert first.changed == ["jellyfin.api_key"] and not first.replayed
    assert replay.replayed and replay.inputs == first.inputs
    assert same_value.changed == []  # stored again, but nothing changed: no update
    assert (conflict.status, conflict.code) == (409, "idempotency_conflict")
    assert len(stand_in.stored_reports) == 2
    assert stand_in.values["input:jellyfin.api_key"] == KEY


def test_a_report_lands_once_across_a_manager_restart(stand_in, caplog):
    """The manager is down when the report is sent, comes back, crashes after storing, comes back."""
    caplog.set_level(logging.DEBUG)
    token = stand_in.issue_token("jellyfin")
    port = free_port()
    served = Served(stand_in.app(), port)
    served.start()
    served.stop()  # the manager restarts: nothing listens for a while
    stand_in.fail_after_store = 1  # and its first answer after the restart is lost

    async def scenario():
        client = ManagerClient(f"http://127.0.0.1:{port}", token, "jellyfin",
                               base_delay=0.05, max_delay=0.2, attempts=60)
        sending = asyncio.create_task(client.report({"api_key": KEY}))
        await asyncio.sleep(0.5)  # several refused connections
        assert not sending.done()
        await asyncio.to_thread(served.start)
        try:
            return await asyncio.wait_for(sending, timeout=20)
        finally:
            await client.aclose()
            await asyncio.to_thread(served.stop)

    accepted = run(scenario())
    assert accepted.replayed  # the answer came from the idempotency record
    assert accepted.inputs == ["jellyfin.api_key"]
    assert len(stand_in.stored_reports) == 1  # exactly once
    assert stand_in.values["input:jellyfin.api_key"] == KEY
    assert "retry" in caplog.text
    assert KEY not in caplog.text and token not in caplog.text


def test_gives_up_after_the_attempts_with_one_clear_sentence():
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def scenario():
        client = ManagerClient(f"http://127.0.0.1:{free_port()}", "t", "jellyfin",
                               attempts=4, base_delay=1, max_delay=3, sleep=sleep)
        with pytest.raises(ManagerError) as failed:
            await client.read_config()
        await client.aclose()
        return failed.value

    failed = run(scenario())
    assert "did not answer (ConnectError) after 4 attempts" in str(failed)
    assert len(slept) == 3
    assert 0.5 <= slept[0] <= 1 and 1 <= slept[1] <= 2 and 1.5 <= slept[2] <= 3  # capped


def test_a_reported_value_is_checked_against_its_input_type_like_the_manager_does(stand_in):
    # The manager validates a report like a wizard answer (422, the value not quoted);
    # the stand-in must too, or a micromanager's tests pass with a value the manager refuses.
    wrong = "not-an-address-0123"

    async def scenario():
        client = in_process(stand_in, stand_in.issue_token("lldap"), "lldap")
        try:
            with pytest.raises(ManagerError) as refused:
                await client.report({"admin_email": wrong})
            accepted = await client.report({"admin_email": "ada@example.com"})
        finally:
            await client.aclose()
        return refused.value, accepted

    refused, accepted = run(scenario())
    assert (refused.status, refused.code) == (422, "invalid")
    assert "lldap.admin_email" in str(refused) and wrong not in str(refused)
    assert accepted.inputs == ["lldap.admin_email"]
    assert len(stand_in.stored_reports) == 1


def test_registration_keeps_retrying_past_a_thousand_attempts():
    # register() retries until the manager answers; a manager down for hours must
    # not end the loop with an OverflowError from the backoff (2**attempt as a float).
    refusals = 1100
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    def handler(request: httpx.Request) -> httpx.Response:
        if len(slept) < refusals:
            return httpx.Response(503)
        return httpx.Response(200, json=c.RegistrationAccepted(
            service="jellyfin", micromanager="jellyfin").model_dump())

    async def scenario():
        client = ManagerClient("http://m", "tok", "jellyfin", max_delay=30, sleep=sleep,
                               transport=httpx.MockTransport(handler))
        try:
            return await client.register(c.Registration(
                service="jellyfin", micromanager="jellyfin", version="0.1.0", url="http://s"))
        finally:
            await client.aclose()

    accepted = run(scenario())
    assert accepted.service == "jellyfin"
    assert len(slept) == refusals and 15 <= slept[-1] <= 30


def test_retries_5xx_and_429_but_not_4xx():
    calls: list[int] = []
    answers = [httpx.Response(503), httpx.Response(429, headers={"Retry-After": "0"}),
               httpx.Response(200, json=c.ConfigResponse(service="jellyfin").model_dump())]

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        assert request.headers["authorization"] == "Bearer tok"
        return answers.pop(0)

    async def scenario():
        client = ManagerClient("http://m", "tok", "jellyfin", base_delay=0,
                               transport=httpx.MockTransport(handler))
        config = await client.read_config()
        refusing = ManagerClient("http://m", "tok", "jellyfin", base_delay=0, transport=httpx.MockTransport(
            lambda r: httpx.Response(403, json={"detail": "no", "code": "forbidden"})))
        with pytest.raises(ManagerError) as refused:
            await refusing.read_config()
        return config, refused.value

    config, refused = run(scenario())
    assert config.service == "jellyfin" and len(calls) == 3
    assert (refused.status, refused.code) == (403, "forbidden")


def run(coro: Any) -> Any:
    started = time.monotonic()
    try:
        return asyncio.run(coro)
    finally:
        assert time.monotonic() - started < 60

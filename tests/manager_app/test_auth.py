"""Login, sessions, the login rate limit, CSRF, and credentials generated once."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import Depends, Request
from manager_helpers import BEARER, PASSWORD, make_settings, running

from manager_app.app import create_app
from manager_app.auth import CSRF_COOKIE, SESSION_COOKIE, csrf_token, require_auth, verify_csrf
from manager_app.settings import ADMIN_PASSWORD_ENV, API_TOKEN_ENV, Settings

pytestmark = pytest.mark.anyio


async def test_login_sets_a_safe_session_cookie_and_logout_ends_it(settings: Settings) -> None:
    async with running(settings) as (_, client):
        response = await client.post("/api/v1/login", json={"password": PASSWORD})
        assert response.status_code == 200
        assert response.json()["csrf_token"]
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        lowered = cookie.lower()
        assert "httponly" in lowered and "samesite=lax" in lowered and "path=/" in lowered
        assert PASSWORD not in cookie
        # The cookie alone now opens the API.
        assert (await client.get("/api/v1/updates")).status_code == 200
        token = response.json()["csrf_token"]
        assert (await client.post("/api/v1/logout")).status_code == 403  # no CSRF token
        logout = await client.post("/api/v1/logout", headers={"X-CSRF-Token": token})
        assert logout.status_code == 204
        client.cookies.clear()
        assert (await client.get("/api/v1/updates")).status_code == 401


async def test_a_forged_session_id_is_refused(settings: Settings) -> None:
    async with running(settings) as (_, client):
        client.cookies.set(SESSION_COOKIE, "made-up")
        assert (await client.get("/api/v1/plan")).status_code == 401


async def test_sessions_survive_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running(settings) as (_, client):
        await client.post("/api/v1/login", json={"password": PASSWORD})
        session = client.cookies[SESSION_COOKIE]
    async with running(settings) as (_, client):
        client.cookies.set(SESSION_COOKIE, session)
        assert (await client.get("/api/v1/updates")).status_code == 200


async def test_failed_logins_are_rate_limited(settings: Settings) -> None:
    async with running(settings) as (_, client):
        for _ in range(5):
            response = await client.post("/api/v1/login", json={"password": "wrong"})
            assert response.status_code == 401
        limited = await client.post("/api/v1/login", json={"password": PASSWORD})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert "wait" in limited.json()["detail"]


async def test_the_limit_counts_failures_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, login_attempts_per_minute=2)
    async with running(settings) as (_, client):
        for _ in range(4):
            assert (await client.post("/api/v1/login", json={"password": PASSWORD})).status_code == 200
        await client.post("/api/v1/login", json={"password": "wrong"})
        assert (await client.post("/api/v1/login", json={"password": PASSWORD})).status_code == 200


# --------------------------------------------------------------------------- CSRF


async def test_api_writes_with_a_session_need_the_csrf_token(settings: Settings) -> None:
    async with running(settings) as (_, client):
        token = (await client.post("/api/v1/login", json={"password": PASSWORD})).json()["csrf_token"]
        refused = await client.post("/api/v1/updates", json={"reason": "x"})
        accepted = await client.post(
            "/api/v1/updates", json={"reason": "x"}, headers={"X-CSRF-Token": token}
        )
        reads = await client.get("/api/v1/updates")
    assert (refused.status_code, accepted.status_code, reads.status_code) == (403, 202, 200)


def _with_form_routes(settings: Settings):  # type: ignore[no-untyped-def]
    """The app plus two routes shaped like the wizard's: a form page and its POST."""
    app = create_app(settings)

    @app.get("/test/form")
    async def form(request: Request) -> dict[str, str]:
        return {"csrf": csrf_token(request)}

    @app.post("/test/form", dependencies=[Depends(verify_csrf)])
    async def submit() -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/test/admin-form", dependencies=[Depends(require_auth), Depends(verify_csrf)])
    async def admin_submit() -> dict[str, str]:
        return {"ok": "yes"}

    return app


async def test_csrf_for_a_logged_in_admin(settings: Settings) -> None:
    import httpx

    app = _with_form_routes(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m.test") as client:
            login = await client.post("/api/v1/login", json={"password": PASSWORD})
            token = login.json()["csrf_token"]
            # The page gets the session's token.
            assert (await client.get("/test/form")).json()["csrf"] == token
            url = "/test/admin-form"
            assert (await client.post(url, data={"x": "1"})).status_code == 403
            assert (await client.post(url, data={"csrf_token": "forged"})).status_code == 403
            assert (await client.post(url, data={"csrf_token": token})).status_code == 200
            assert (await client.post(url, headers={"X-CSRF-Token": token})).status_code == 200
            # A bearer-token client has no ambient cookie to abuse: no CSRF token needed.
            client.cookies.clear()
            assert (await client.post(url, headers=BEARER)).status_code == 200
    app.state.store.close()


async def test_csrf_double_submit_before_login(settings: Settings) -> None:
    import httpx

    app = _with_form_routes(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m.test") as client:
            page = await client.get("/test/form")
            token = page.json()["csrf"]
            assert CSRF_COOKIE in page.headers["set-cookie"]
            assert "httponly" in page.headers["set-cookie"].lower()
            assert (await client.post("/test/form", data={"csrf_token": token})).status_code == 200
            assert (await client.post("/test/form", data={"csrf_token": "x"})).status_code == 403
            client.cookies.clear()  # a cross-site form: no cookie to match
            assert (await client.post("/test/form", data={"csrf_token": token})).status_code == 403
    app.state.store.close()


# --------------------------------------------------------------------------- credentials


def test_credentials_are_generated_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ADMIN_PASSWORD_ENV, raising=False)
    monkeypatch.delenv(API_TOKEN_ENV, raising=False)
    settings = Settings.from_env(data_dir=tmp_path, dry_run=True)
    first = create_app(settings)
    generated = first.state.generated
    assert generated.admin_password and generated.api_token
    assert generated.admin_password not in repr(generated)
    first.state.store.close()
    second = create_app(settings)
    assert second.state.generated.admin_password is None
    assert second.state.generated.api_token is None
    from manager_app.credentials import ADMIN_PASSWORD
    from manager_app.crypto import verify_password

    stored = second.state.store.credential(ADMIN_PASSWORD)
    assert verify_password(generated.admin_password, stored)
    second.state.store.close()


async def test_credentials_from_the_environment_replace_stored_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    monkeypatch.setenv(ADMIN_PASSWORD_ENV, "first-password")
    monkeypatch.setenv(API_TOKEN_ENV, "first-token")
    create_app(Settings.from_env(data_dir=tmp_path)).state.store.close()
    monkeypatch.setenv(ADMIN_PASSWORD_ENV, "second-password")
    monkeypatch.setenv(API_TOKEN_ENV, "second-token")
    settings = Settings.from_env(data_dir=tmp_path)
    assert "second-password" not in repr(settings)
    app = create_app(settings)
    assert app.state.generated.admin_password is None
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://m.test") as client:
        old = await client.post("/api/v1/login", json={"password": "first-password"})
        new = await client.post("/api/v1/login", json={"password": "second-password"})
        token = await client.get(
            "/api/v1/updates", headers={"Authorization": "Bearer second-token"}
        )
    assert (old.status_code, new.status_code, token.status_code) == (401, 200, 200)
    app.state.store.close()

"""The wizard's pages in process: auth redirects, CSRF on every form, fields, escaping, secrets.

The app runs with its update runner (lifespan entered by ``running``) and is
driven by ``httpx.AsyncClient`` over ``ASGITransport``, the way a browser
without JavaScript would use it: GET a page, read the CSRF token out of the
form, POST the form, follow the 303. The real browser walk is in
``tests/e2e/test_wizard_browser.py``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from manager_helpers import (
    MEDIA_PARAMS,
    PASSWORD,
    build_manifest,
    inp,
    make_settings,
    media_server,
    running,
)

from manager_app.auth import SESSION_COOKIE
from manager_app.deployers import DeployResult
from manager_app.web import views
from mora_dsl.manifest import Concat, Manifest, Ref, TypeSpec
from stacks.config import StackConfig

pytestmark = pytest.mark.anyio

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Instant:
    """A deployer that succeeds at once (for hand-built manifests that need no render)."""

    def up(self, manifest: Manifest, config: StackConfig) -> DeployResult:
        return DeployResult(deployed=sorted(config.deploy or ()))

    def refresh(self, manifest: Manifest, config: StackConfig) -> None:
        pass


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


async def login(client: httpx.AsyncClient) -> str:
    """Log in through the form; returns the session's CSRF token."""
    page = await client.get("/login")
    response = await client.post(
        "/login", data={"password": PASSWORD, "csrf_token": csrf_of(page.text), "next": "/"}
    )
    assert response.status_code == 303, response.text
    return csrf_of((await client.get("/wizard")).text)


@asynccontextmanager
async def app_with(
    tmp_path: Path, manifest: Manifest | None, params: dict[str, Any] | None = None, *,
    deployer: Any = None, wait: bool = True,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with ``manifest`` received and its first updates done, and a client."""
    async with running(make_settings(tmp_path), deployer) as (app, client):
        if manifest is not None:
            app.state.manager.receive_manifest(manifest, params or {})
            if wait:
                await app.state.runner.wait_idle(60)
        yield app, client


def field_tag(html: str, name: str) -> str:
    """The ``<input>`` or ``<select>`` tag whose name is ``name``."""
    match = re.search(rf'<(input|select) [^>]*name="{re.escape(name)}"[^>]*>', html)
    assert match, f"no field named {name}"
    return match.group(0)


def label_for(html: str, text: str) -> str:
    """The ``id`` a ``<label>`` with exactly ``text`` points at."""
    match = re.search(rf'<label for="([^"]+)">{re.escape(text)}</label>', html)
    assert match, f"no <label> reading {text!r}"
    return match.group(1)


def fields_manifest() -> Manifest:
    """One service with an input of each kind, all asked before it deploys."""
    types = {
        "name": TypeSpec(name="string"),
        "admin_email": TypeSpec(name="email"),
        "homepage": TypeSpec(name="url"),
        "workers": TypeSpec(name="int"),
        "port": TypeSpec(name="port"),
        "public": TypeSpec(name="bool"),
        "flavour": TypeSpec(name="one_of", choices=["vanilla", "chocolate"]),
        "token": TypeSpec(name="secret"),
        "zone": TypeSpec(name="domain"),
        "root": TypeSpec(name="path"),
    }
    inputs = [
        inp(f"app.{name}", used_by=["app"], title=f"The {name}").model_copy(update={"type": spec})
        for name, spec in types.items()
    ]
    return build_manifest({"app": []}, inputs)


# --------------------------------------------------------------------------- auth


async def test_every_page_sends_a_logged_out_browser_to_the_login_page(tmp_path: Path) -> None:
    async with app_with(tmp_path, media_server(), MEDIA_PARAMS, wait=False) as (_, client):
        for path in ("/", "/wizard", "/services", "/services/lldap", "/wizard?update=1"):
            response = await client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/login?next=%2F"), path
        for fragment in ("/wizard/status", "/overview/live"):
            assert (await client.get(fragment)).status_code == 401
        client.cookies.set(SESSION_COOKIE, "forged")
        assert (await client.get("/")).status_code == 303


async def test_the_login_form_has_a_password_label_and_a_csrf_token(tmp_path: Path) -> None:
    async with app_with(tmp_path, None) as (_, client):
        page = await client.get("/login")
        assert page.status_code == 200
        assert label_for(page.text, "Password") == "password"
        tag = field_tag(page.text, "password")
        assert 'type="password"' in tag and 'id="password"' in tag
        assert csrf_of(page.text)
        assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_a_wrong_password_says_so_and_echoes_nothing(tmp_path: Path) -> None:
    async with app_with(tmp_path, None) as (_, client):
        token = csrf_of((await client.get("/login")).text)
        typed = "my-Typed-Guess-42"
        response = await client.post("/login", data={"password": typed, "csrf_token": token})
        assert response.status_code == 401
        assert "That password is not right" in response.text
        assert typed not in response.text
        assert PASSWORD not in response.text
        assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


async def test_too_many_failed_logins_show_a_wait_message(tmp_path: Path) -> None:
    async with app_with(tmp_path, None) as (_, client):
        token = csrf_of((await client.get("/login")).text)
        for _ in range(5):
            await client.post("/login", data={"password": "nope", "csrf_token": token})
        response = await client.post("/login", data={"password": PASSWORD, "csrf_token": token})
        assert response.status_code == 429
        assert "Too many failed attempts" in response.text
        assert int(response.headers["retry-after"]) > 0


async def test_login_goes_to_next_but_never_off_site(tmp_path: Path) -> None:
    async with app_with(tmp_path, None) as (_, client):
        token = csrf_of((await client.get("/login?next=/services")).text)
        for target, expected in (("/services", "/services"), ("//evil.example/x", "/"),
                                 ("https://evil.example/", "/")):
            client.cookies.delete(SESSION_COOKIE)
            response = await client.post(
                "/login", data={"password": PASSWORD, "csrf_token": token, "next": target}
            )
            assert response.status_code == 303
            assert response.headers["location"] == expected


async def test_every_form_post_is_refused_without_the_csrf_token(tmp_path: Path) -> None:
    async with app_with(tmp_path, media_server(), MEDIA_PARAMS) as (app, client):
        login_token = csrf_of((await client.get("/login")).text)
        # The login form itself: no token, and a token from elsewhere.
        assert (await client.post("/login", data={"password": PASSWORD})).status_code == 403
        assert (await client.post(
            "/login", data={"password": PASSWORD, "csrf_token": "x" + login_token}
        )).status_code == 403
        token = await login(client)
        posts = {
            "/logout": {},
            "/wizard": {"inputs": "lldap.admin_email", "lldap.admin_email": "a@example.com"},
            "/updates/retry": {},
            "/removals/lldap/confirm": {},
            "/services/lldap/reveal": {"secret": "lldap.jwt_secret", "password": PASSWORD},
            "/services/lldap/restart": {},
            "/services/lldap/secrets/lldap.jwt_secret/rotate": {},
        }
        for path, data in posts.items():
            for sent in ({}, {"csrf_token": "not-the-token"}):
                response = await client.post(path, data={**data, **sent})
                assert response.status_code == 403, (path, sent)
                assert "form expired" in response.text.lower()
        # Nothing was changed by the refused posts, and the session is still alive.
        assert not app.state.store.answered()
        assert (await client.get("/")).status_code == 200
        # With the token the same posts work.
        retry = await client.post("/updates/retry", data={"csrf_token": token, "back": "/"})
        assert retry.status_code == 303
        logout = await client.post("/logout", data={"csrf_token": token})
        assert logout.status_code == 303 and logout.headers["location"] == "/login"
        assert (await client.get("/")).status_code == 303


# --------------------------------------------------------------------------- overview


async def test_the_overview_shows_waves_states_urls_and_the_next_step(tmp_path: Path) -> None:
    async with app_with(tmp_path, media_server(), MEDIA_PARAMS) as (_, client):
        await login(client)
        page = (await client.get("/")).text
        assert "<h1>media-server</h1>" in page
        for wave in ("Wave 1", "Wave 2", "Wave 3", "Wave 4"):
            assert wave in page
        assert 'class="badge state-running">running</span>' in page
        assert 'class="badge state-waiting_for_input">waiting for input</span>' in page
        assert 'href="https://watch.home.example.com"' in page  # jellyfin runs
        assert "janitorr" in page and "https://" + "janitorr" not in page
        assert 'href="/wizard">Continue the setup</a>' in page
        assert 'data-live="/overview/live"' in page
        assert 'src="/static/mora.js"' in page
        live = await client.get("/overview/live")
        assert live.status_code == 200 and "Update #" in live.text and "<html" not in live.text


async def test_a_removed_service_waits_for_its_confirmation_form(tmp_path: Path) -> None:
    first = build_manifest({"app": [], "old": []})
    async with app_with(tmp_path, first, deployer=Instant()) as (app, client):
        token = await login(client)
        app.state.manager.receive_manifest(build_manifest({"app": []}), {})
        page = (await client.get("/")).text
        assert 'action="/removals/old/confirm"' in page and "Remove old" in page
        response = await client.post("/removals/old/confirm", data={"csrf_token": token})
        assert response.status_code == 303
        await app.state.runner.wait_idle(30)
        assert "Remove old" not in (await client.get("/")).text
        missing = await client.post("/removals/nothing/confirm", data={"csrf_token": token})
        assert missing.status_code == 404


# --------------------------------------------------------------------------- wizard


async def test_wizard_fields_are_labelled_and_typed(tmp_path: Path) -> None:
    async with app_with(tmp_path, fields_manifest(), deployer=Instant()) as (_, client):
        await login(client)
        page = (await client.get("/wizard")).text
        assert "Continue the setup" not in page  # the next step is the one on the page
        expected = {
            "name": 'type="text"', "admin_email": 'type="email"', "homepage": 'type="url"',
            "workers": 'type="number"', "port": 'type="number"', "token": 'type="password"',
            "zone": 'type="text"', "root": 'type="text"',
        }
        for name, attr in expected.items():
            html_id = label_for(page, f"The {name}")
            tag = field_tag(page, f"app.{name}")
            assert f'id="{html_id}"' in tag and attr in tag, name
        assert 'min="1"' in field_tag(page, "app.port") and 'max="65535"' in field_tag(page, "app.port")
        assert 'autocomplete="off"' in field_tag(page, "app.token")
        assert "value=" not in field_tag(page, "app.token")
        for name in ("public", "flavour"):
            assert field_tag(page, f"app.{name}").startswith("<select"), name
        assert '<option value="chocolate">chocolate</option>' in page
        assert '<option value="true">Yes</option>' in page
        # One form, with its own submit button, so Enter in any field submits it.
        form = page[page.index('<form method="post" action="/wizard"'):]
        form = form[: form.index("</form>")]
        assert form.count('type="submit"') == 1 and "novalidate" in page


async def test_an_invalid_answer_is_shown_inline_and_keeps_the_other_values(tmp_path: Path) -> None:
    async with app_with(tmp_path, fields_manifest(), deployer=Instant()) as (app, client):
        token = await login(client)
        secret = "tok-" + "S3cr3t" * 3
        data = {
            "csrf_token": token,
            "inputs": [f"app.{n}" for n in ("name", "admin_email", "port", "token", "flavour")],
            "app.name": "Media box", "app.admin_email": "not-an-email", "app.port": "99999",
            "app.token": secret, "app.flavour": "vanilla",
        }
        response = await client.post("/wizard", data=data)
        assert response.status_code == 422
        page = response.text
        assert secret not in page
        # Errors next to their fields, the wrong text kept in them.
        assert 'id="answer-app-admin_email-error"' in page and "is not an e-mail address" in page
        assert 'value="not-an-email"' in field_tag(page, "app.admin_email")
        assert 'aria-invalid="true"' in field_tag(page, "app.admin_email")
        assert 'value="99999"' in field_tag(page, "app.port")
        assert "is not a port" in page
        # The valid values stay in the form (and are saved); the secret is saved, not echoed.
        assert 'value="Media box"' in field_tag(page, "app.name")
        assert '<option value="vanilla" selected>' in page
        assert "value=" not in field_tag(page, "app.token")
        assert "leave blank to keep it" in page
        answered = app.state.store.answered()
        assert {"app.name", "app.token", "app.flavour"} <= set(answered)
        assert "app.admin_email" not in answered
        assert app.state.store.answer("app.token") == secret
        # Fix the two fields, leave the saved secret blank: accepted, and it stays saved.
        fixed = {**data, "app.admin_email": "admin@example.com", "app.port": "8443", "app.token": ""}
        ok = await client.post("/wizard", data=fixed)
        assert ok.status_code == 303 and ok.headers["location"].startswith("/wizard?saved=")
        assert app.state.store.answer("app.token") == secret
        assert app.state.store.answer("app.port") == "8443"


async def test_a_blank_required_field_is_an_inline_error(tmp_path: Path) -> None:
    async with app_with(tmp_path, fields_manifest(), deployer=Instant()) as (_, client):
        token = await login(client)
        response = await client.post(
            "/wizard", data={"csrf_token": token, "inputs": ["app.name", "app.token"],
                             "app.name": "  ", "app.token": ""},
        )
        assert response.status_code == 422
        assert response.text.count("Enter a value.") == 2


async def test_after_an_answer_the_page_follows_the_update_it_triggered(tmp_path: Path) -> None:
    manifest = build_manifest({"app": []}, [inp("app.name", used_by=["app"])])
    async with app_with(tmp_path, manifest, deployer=Instant()) as (app, client):
        token = await login(client)
        response = await client.post(
            "/wizard", data={"csrf_token": token, "inputs": "app.name", "app.name": "box"}
        )
        assert response.status_code == 303
        location = response.headers["location"]
        update_id = int(re.search(r"update=(\d+)", location).group(1))  # type: ignore[union-attr]
        page = (await client.get(location)).text
        assert "Saved." in page and f"Update #{update_id}" in page
        assert f"update={update_id}" in page  # the live region follows that update
        await app.state.runner.wait_idle(30)
        status = await client.get(f"/wizard/status?update={update_id}&showing=")
        assert 'class="badge update-succeeded">succeeded' in status.text
        assert "1 of 1</strong> services running" in status.text
        done = (await client.get("/wizard")).text
        assert "All set" in done and "Every service runs" in done


async def test_help_text_is_escaped_and_its_urls_become_links(tmp_path: Path) -> None:
    help_text = 'Beware <script>alert("x")</script> & see https://example.com/a?b=1&c=2, then go.'
    manifest = build_manifest(
        {"app": []}, [inp("app.name", used_by=["app"]).model_copy(update={"help": help_text})]
    )
    async with app_with(tmp_path, manifest, deployer=Instant()) as (_, client):
        await login(client)
        page = (await client.get("/wizard")).text
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; see" in page
        assert '<a href="https://example.com/a?b=1&amp;c=2" target="_blank"' in page
        assert "https://example.com/a?b=1&amp;c=2</a>, then go." in page


async def test_symbolic_help_shows_service_urls_but_never_secrets_or_answers(tmp_path: Path) -> None:
    help_value = Concat(concat=[
        "Open ", Ref(ref="service:jellyfin.url"), "/keys; key ", Ref(ref="secret:jellyfin.k"),
        "; other ", Ref(ref="input:lldap.admin_email"), "; domain ", Ref(ref="param:domain"),
    ])
    manifest = media_server()
    inputs = [i.model_copy(update={"help": help_value}) if i.id == "jellyfin.api_key" else i
              for i in manifest.inputs]
    manifest = manifest.model_copy(update={"inputs": inputs})
    text = views.display_text(help_value, manifest, MEDIA_PARAMS)
    assert text.startswith("Open https://watch.home.example.com/keys; key ‹generated secret›")
    assert "other ‹your answer›" in text and "domain home.example.com" in text
    async with app_with(tmp_path, manifest, MEDIA_PARAMS) as (_, client):
        token = await login(client)
        await client.post("/wizard", data={
            "csrf_token": token, "inputs": "lldap.admin_email",
            "lldap.admin_email": "owner@home.example.com",
        })
        page = (await client.get("/wizard")).text
        assert '<a href="https://watch.home.example.com/keys"' in page
        assert "owner@home.example.com" not in page
        assert "‹your answer›" in page and "‹generated secret›" in page


# --------------------------------------------------------------------------- services


async def test_services_table_and_a_secret_revealed_only_with_the_password(tmp_path: Path) -> None:
    async with app_with(tmp_path, media_server(), MEDIA_PARAMS) as (app, client):
        token = await login(client)
        table = (await client.get("/services")).text
        assert "<code>lldap/lldap:v0.6.1</code>" in table
        assert 'href="https://ldap.home.example.com"' in table
        assert "added services:" in table or "ready:" in table  # what the last update changed
        detail = await client.get("/services/lldap")
        assert detail.status_code == 200
        assert "lldap.jwt_secret" in detail.text and "ldap_admin_password" in detail.text
        assert label_for(detail.text, "Admin password") == "reveal-password"
        assert "1 of 1 ready" in detail.text
        value = app.state.manager.secret_values.reveal(
            media_server(), media_server().secret("lldap.jwt_secret")
        )
        assert value not in detail.text

        wrong = await client.post("/services/lldap/reveal", data={
            "csrf_token": token, "secret": "lldap.jwt_secret", "password": "guess",
        })
        assert wrong.status_code == 403 and value not in wrong.text
        assert "That password is not right" in wrong.text and "guess" not in wrong.text
        other = await client.post("/services/lldap/reveal", data={
            "csrf_token": token, "secret": "sonarr.api_key", "password": PASSWORD,
        })
        assert other.status_code == 422  # not one of lldap's secrets
        shown = await client.post("/services/lldap/reveal", data={
            "csrf_token": token, "secret": "lldap.jwt_secret", "password": PASSWORD,
        })
        assert shown.status_code == 200
        assert value in shown.text  # (a bare `in`: a failing assertion would not print it)
        assert shown.headers["cache-control"] == "no-store"
        assert value not in (await client.get("/services/lldap")).text
        assert (await client.get("/services/nope")).status_code == 404


async def test_restart_logs_and_rotation_act_on_the_dry_run_state(tmp_path: Path) -> None:
    async with app_with(tmp_path, media_server(), MEDIA_PARAMS) as (app, client):
        token = await login(client)
        restart = await client.post("/services/lldap/restart", data={"csrf_token": token})
        assert restart.status_code == 303
        page = (await client.get(restart.headers["location"])).text
        assert "lldap was restarted." in page and "last restart" in page
        logs = await client.get("/services/lldap/logs?tail=50")
        assert logs.status_code == 200
        assert "restarted by the admin (dry run)" in logs.text
        # janitorr is not deployed yet: no restart, said in words.
        blocked = await client.post("/services/janitorr/restart", data={"csrf_token": token})
        assert blocked.status_code == 409 and "Not deployed yet" in blocked.text

        secret = media_server().secret("lldap.jwt_secret")
        before = app.state.manager.secret_values.reveal(media_server(), secret)
        ask = await client.post(
            "/services/lldap/secrets/lldap.jwt_secret/rotate", data={"csrf_token": token}
        )
        assert ask.status_code == 200 and "Yes, rotate lldap.jwt_secret" in ask.text
        assert app.state.manager.secret_values.reveal(media_server(), secret) == before
        rotate = await client.post(
            "/services/lldap/secrets/lldap.jwt_secret/rotate",
            data={"csrf_token": token, "confirm": "yes"},
        )
        assert rotate.status_code == 303 and "rotated=lldap.jwt_secret" in rotate.headers["location"]
        after = app.state.manager.secret_values.reveal(media_server(), secret)
        assert after != before
        page = (await client.get(rotate.headers["location"])).text
        assert "has a new value" in page and after not in page and before not in page
        foreign = await client.post(
            "/services/lldap/secrets/sonarr.api_key/rotate", data={"csrf_token": token}
        )
        assert foreign.status_code == 404


async def test_a_service_page_from_a_form_asks_the_cluster_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster call of a service's page blocks: from an async form route it runs in a thread."""
    async with app_with(tmp_path, media_server(), MEDIA_PARAMS) as (app, client):
        token = await login(client)
        manager = app.state.manager
        asked_from: list[int] = []
        ask_cluster = manager.service_status

        def recording(name: str) -> Any:
            asked_from.append(threading.get_ident())
            return ask_cluster(name)

        monkeypatch.setattr(manager, "service_status", recording)
        ask = await client.post(
            "/services/lldap/secrets/lldap.jwt_secret/rotate", data={"csrf_token": token}
        )
        assert ask.status_code == 200 and "Yes, rotate lldap.jwt_secret" in ask.text
        shown = await client.post("/services/lldap/reveal", data={
            "csrf_token": token, "secret": "lldap.jwt_secret", "password": PASSWORD,
        })
        assert shown.status_code == 200
        assert len(asked_from) == 2
        assert threading.get_ident() not in asked_from  # the test runs on the event loop's thread


async def test_pages_without_a_manifest_say_what_to_do(tmp_path: Path) -> None:
    async with app_with(tmp_path, None) as (_, client):
        await login(client)
        for path in ("/", "/wizard", "/services"):
            response = await client.get(path)
            assert response.status_code == 200, path
            assert "has not received a manifest" in response.text, path
        assert (await client.get("/wizard/status")).status_code == 200


async def test_static_files_are_served_from_the_package_only(tmp_path: Path) -> None:
    async with app_with(tmp_path, None) as (_, client):
        css = await client.get("/static/mora.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        js = await client.get("/static/mora.js")
        assert js.status_code == 200 and "data-live" in js.text
        assert (await client.get("/static/..%2Froutes.py")).status_code == 404
        assert (await client.get("/static/nothing.css")).status_code == 404


def test_linkify_trims_punctuation_and_keeps_paragraphs() -> None:
    html = str(views.linkify("See https://a.example/x.\n\nNext (https://b.example/y)"))
    assert '<a href="https://a.example/x"' in html and "</a>.</p><p>Next (" in html
    assert '<a href="https://b.example/y"' in html and "</a>)</p>" in html


def test_steps_group_inputs_asked_at_the_same_time_in_planner_order() -> None:
    from manager_app import planner

    manifest = media_server()
    states = dict.fromkeys(("lldap", "qbittorrent", "prowlarr", "jellyfin", "sonarr", "radarr",
                            "jellyseerr"), "running")
    plan = planner.plan(manifest, [], states)
    assert [s.ids for s in views.steps(plan)] == [
        ["lldap.admin_email", "jellyfin.api_key"], ["jellyseerr.api_key"],
    ]

"""The ``qbittorrent`` built-in against a real ``qbittorrent-nox`` (4.5, Debian) on loopback.

The project is the media-server example, whose automation.mora gives the
qbittorrent service the micromanager and a generated ``webui_password``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from kit_peers import DOMAIN, ROOT, QBittorrent

from micromanager_kit.builtins import qbittorrent as qbt_mm
from micromanager_kit.testing import Harness, HookFailed, hook_context
from mora_dsl import compile_project
from mora_dsl.manifest import Manifest

PASSWORD = "generated-webui-password-0123"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    # examples/media-server/automation.mora adds the micromanager and its secret
    project = tmp_path_factory.mktemp("media") / "media-server"
    shutil.copytree(ROOT / "examples" / "media-server", project)
    return compile_project(project).validated()


def harness(manifest: Manifest, qbt: QBittorrent, **values: Any) -> Harness:
    known = {"param:domain": DOMAIN, "secret:qbittorrent.webui_password": PASSWORD, **values}
    return Harness(qbt_mm.mm, manifest, "qbittorrent", known,
                   service_host="127.0.0.1", service_ports={"http": qbt.port})


def login(qbt: QBittorrent, username: str, password: str) -> httpx.Client | None:
    """A signed-in Web API session (the caller closes it), or ``None`` when refused."""
    http = httpx.Client(base_url=qbt.url, headers={"Referer": qbt.url})
    response = http.post("/api/v2/auth/login", data={"username": username, "password": password})
    if response.text.strip() != "Ok.":
        http.close()
        return None
    return http


def signed_in(qbt: QBittorrent, username: str, password: str) -> httpx.Client:
    http = login(qbt, username, password)
    assert http is not None, f"qBittorrent refused the login of {username}"
    return http


def test_the_manifest_entry_references_the_generated_password(manifest):
    from micromanager_kit.contract import refs_of_service

    assert "secret:qbittorrent.webui_password" in refs_of_service(manifest, "qbittorrent")


def test_sets_the_credentials_and_creates_the_categories(manifest, qbittorrent, caplog):
    caplog.set_level(logging.DEBUG)

    async def scenario():
        async with harness(manifest, qbittorrent) as h:
            first = await h.hook("after_start")
            again = await h.hook("after_start")
            return first, again

    first, again = asyncio.run(scenario())
    assert first.changes == [
        "set the Web UI login of user admin",
        f"created category tv ({qbittorrent.save_path}/tv)",
        f"created category movies ({qbittorrent.save_path}/movies)",
    ]
    assert again.changes == [] and again.message == "qBittorrent was already set up"

    http = signed_in(qbittorrent, "admin", PASSWORD)
    categories = http.get("/api/v2/torrents/categories").json()
    http.close()
    assert categories == {
        "tv": {"name": "tv", "savePath": f"{qbittorrent.save_path}/tv"},
        "movies": {"name": "movies", "savePath": f"{qbittorrent.save_path}/movies"},
    }
    assert login(qbittorrent, "admin", "adminadmin") is None  # the default no longer works
    assert PASSWORD not in caplog.text
    assert PASSWORD not in first.model_dump_json()


def test_a_moved_category_is_put_back(manifest, qbittorrent):
    async def scenario():
        async with harness(manifest, qbittorrent) as h:
            await h.hook("after_start")
            http = signed_in(qbittorrent, "admin", PASSWORD)
            http.post("/api/v2/torrents/editCategory", data={"category": "tv", "savePath": "/elsewhere"})
            http.close()
            return await h.hook("reconfigure")

    fixed = asyncio.run(scenario())
    assert fixed.changes == [f"moved category tv to {qbittorrent.save_path}/tv"]


def test_asks_for_the_temporary_password_when_no_default_works(manifest, qbittorrent):
    """qBittorrent ≥ 4.6 has no default password: simulated by changing 4.5's first."""
    temporary = "printed-in-the-log-42"
    http = signed_in(qbittorrent, "admin", "adminadmin")
    prefs = json.dumps({"web_ui_password": temporary})
    assert http.post("/api/v2/app/setPreferences", data={"json": prefs}).status_code == 200
    http.close()

    async def scenario():
        async with harness(manifest, qbittorrent) as h:
            with pytest.raises(HookFailed) as failed:
                await h.hook("after_start")
            requested = dict(h.manager.requested_inputs)
            h.manager.values["input:qbittorrent.temporary_password"] = temporary  # the person answers
            done = await h.hook("inputs_answered", answered=["qbittorrent.temporary_password"])
            return failed.value, requested, done

    failed, requested, done = asyncio.run(scenario())
    assert failed.status == 503 and failed.body.code == "not_ready"
    assert "temporary password" in (failed.body.hint or "")
    request = requested["qbittorrent.temporary_password"]
    assert request.type.name == "secret"
    assert "set the Web UI login of user admin" in done.changes
    signed_in(qbittorrent, "admin", PASSWORD).close()


def test_health_does_not_log_in(manifest, qbittorrent):
    async def scenario():
        async with harness(manifest, qbittorrent) as h:
            return await h.health()

    assert asyncio.run(scenario()).healthy is True


def test_missing_secret_says_what_to_declare(media_manifest, tmp_path: Path):
    # the unpatched example: qbittorrent has no micromanager; call the hook directly
    from micromanager_kit.contract import scoped_config

    ctx = hook_context("qbittorrent",
                       scoped_config(media_manifest, "qbittorrent", {"param:domain": DOMAIN}))
    with pytest.raises(qbt_mm.NotReady) as missing:
        qbt_mm.bootstrap(ctx)
    assert "webui_password" in (missing.value.hint or "")


def test_the_web_ui_password_stays_out_of_reprs():
    ui = qbt_mm.WebUI(url="http://qbittorrent:8080", username="admin", password="webui-pw-0123456789")
    assert "webui-pw-0123456789" not in repr(ui) and "admin" in repr(ui)

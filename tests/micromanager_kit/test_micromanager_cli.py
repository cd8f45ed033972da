"""``mora micromanager run``: the real command, a real uvicorn stand-in manager, a real slapd."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import httpx
import ldap3
from kit_peers import BASE_DN, DOMAIN, Served, free_port, stop

from micromanager_kit import contract as c
from micromanager_kit.testing import StandInManager, call_hook
from mora_cli.main import run as mora


def test_unknown_builtin_and_missing_token_are_usage_errors(capsys, monkeypatch):
    monkeypatch.delenv("MORA_MICROMANAGER_TOKEN", raising=False)
    assert mora(["micromanager", "run", "nope", "--manager", "http://m", "--token", "t"]) == 2
    assert mora(["micromanager", "run", "ldap", "--manager", "http://m"]) == 2
    assert mora(["micromanager", "run", "ldap", "--manager", "http://m", "--token", "t",
                 "--service-port", "ldap"]) == 2
    err = capsys.readouterr().err
    assert "built-ins: arr, jellyfin, jellyseerr, ldap, qbittorrent" in err
    assert "MORA_MICROMANAGER_TOKEN" in err
    assert "NAME=PORT" in err


def test_run_registers_and_serves_the_ldap_hooks(media_manifest, slapd, tmp_path):
    stand_in = StandInManager(media_manifest, {
        "param:domain": DOMAIN, "param:timezone": "Etc/UTC",
        "secret:ldap_admin_password": slapd.password, "secret:lldap.jwt_secret": "j" * 64,
        "input:lldap.admin_email": "admin@home.example.com",
    })
    token = stand_in.issue_token("lldap")
    manager = Served(stand_in.app(), free_port())
    manager.start()
    port = free_port()
    log = (tmp_path / "sidecar.log").open("wb")
    sidecar = subprocess.Popen(
        [sys.executable, "-m", "mora_cli", "micromanager", "run", "ldap",
         "--manager", f"http://127.0.0.1:{manager.port}", "--service", "lldap",
         "--host", "127.0.0.1", "--port", str(port),
         "--service-host", "127.0.0.1", "--service-port", f"ldap={slapd.port}"],
        env={**os.environ, "MORA_MICROMANAGER_TOKEN": token},
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while "lldap" not in stand_in.registrations:
            assert sidecar.poll() is None, (tmp_path / "sidecar.log").read_text()
            assert time.monotonic() < deadline, "the sidecar did not register"
            time.sleep(0.05)
        registration = stand_in.registrations["lldap"]
        assert registration.url == f"http://127.0.0.1:{port}"
        assert [a.name for a in registration.actions] == ["add_person", "reset_password", "add_to_group"]

        async def manager_calls():
            async with httpx.AsyncClient(base_url=registration.url, timeout=30) as http:
                refused = await call_hook(http, c.PATH_HOOK_AFTER_START, c.HookCall(service="lldap"),
                                          hook_token="guess")
                done = await call_hook(http, c.PATH_HOOK_AFTER_START, c.HookCall(service="lldap"),
                                       hook_token=registration.hook_token)
                return refused, done

        refused, done = asyncio.run(manager_calls())
        assert refused.status_code == 401
        assert done.status_code == 200, done.text
        assert f"created uid=admin,ou=people,{BASE_DN}" in done.json()["changes"]
        conn = ldap3.Connection(ldap3.Server("127.0.0.1", port=slapd.port),
                                user=f"uid=admin,ou=people,{BASE_DN}", password=slapd.password)
        assert conn.bind()
        conn.unbind()
    finally:
        stop(sidecar)
        manager.stop()
        log.close()
    text = (tmp_path / "sidecar.log").read_text()
    assert slapd.password not in text and token not in text
    assert registration.hook_token not in text

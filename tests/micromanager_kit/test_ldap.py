"""The ``ldap`` built-in against a real OpenLDAP ``slapd`` on loopback.

The service's config is the media-server example's ``lldap`` entry, served by
the kit's manager stand-in; only the address points at the test's slapd, whose
root password plays the generated ``ldap_admin_password``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ldap3
import pytest
from kit_peers import BASE_DN, DOMAIN, Slapd, free_port

from micromanager_kit.builtins import ldap as ldap_mm
from micromanager_kit.testing import Harness, HookFailed

ADMIN_DN = f"uid=admin,ou=people,{BASE_DN}"
EMAIL = "admin@home.example.com"


def values(slapd: Slapd, *, email: str | None = EMAIL, password: str | None = None) -> dict[str, Any]:
    known: dict[str, Any] = {
        "param:domain": DOMAIN,
        "param:timezone": "Etc/UTC",
        "secret:ldap_admin_password": password or slapd.password,
        "secret:lldap.jwt_secret": "a" * 64,
    }
    if email is not None:
        known["input:lldap.admin_email"] = email
    return known


def harness(manifest: Any, slapd: Slapd, **kw: Any) -> Harness:
    return Harness(ldap_mm.mm, manifest, "lldap", values(slapd, **kw),
                   service_host="127.0.0.1", service_ports={"ldap": slapd.port})


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def can_bind(slapd: Slapd, dn: str, password: str) -> bool:
    conn = ldap3.Connection(ldap3.Server("127.0.0.1", port=slapd.port), user=dn, password=password)
    try:
        return bool(conn.bind())
    finally:
        conn.unbind()


def snapshot(slapd: Slapd) -> dict[str, dict[str, Any]]:
    """Every entry with its operational attributes (modifyTimestamp, entryCSN…)."""
    conn = ldap3.Connection(ldap3.Server("127.0.0.1", port=slapd.port), user=slapd.root_dn,
                            password=slapd.password, auto_bind=True)
    try:
        conn.search(BASE_DN, "(objectClass=*)", attributes=["*", "+"])
        return {e.entry_dn: e.entry_attributes_as_dict for e in conn.entries}
    finally:
        conn.unbind()


def test_after_start_builds_the_tree_and_the_admin_can_bind(media_manifest, slapd):
    async def scenario():
        async with harness(media_manifest, slapd) as h:
            return await h.hook("after_start")

    result = run(scenario())
    assert result.message == "the directory is ready"
    assert f"created {BASE_DN}" in result.changes

    tree = snapshot(slapd)
    assert {f"ou=people,{BASE_DN}", f"ou=groups,{BASE_DN}", ADMIN_DN} <= set(tree)
    admin = tree[ADMIN_DN]
    assert admin["mail"] == [EMAIL]
    assert "inetOrgPerson" in admin["objectClass"]
    for group in ("admins", "users"):
        entry = tree[f"cn={group},ou=groups,{BASE_DN}"]
        assert "groupOfUniqueNames" in entry["objectClass"]
        assert entry["uniqueMember"] == [ADMIN_DN]
    # the password is stored hashed (Password Modify), and binding as the admin works
    assert not any(slapd.password in str(v) for v in admin.get("userPassword", []))
    assert can_bind(slapd, ADMIN_DN, slapd.password)
    assert not can_bind(slapd, ADMIN_DN, "wrong-password")


def test_running_again_changes_nothing(media_manifest, slapd):
    async def scenario():
        async with harness(media_manifest, slapd) as h:
            await h.hook("after_start")
            before = snapshot(slapd)
            again = await h.hook("reconfigure", changed=["param:timezone"])
            return before, again

    before, again = run(scenario())
    assert again.changes == []
    assert again.message == "the directory was already set up"
    assert snapshot(slapd) == before  # same entries, same modifyTimestamp/entryCSN


def test_waits_for_the_email_then_finishes_when_answered(media_manifest, slapd):
    async def scenario():
        async with harness(media_manifest, slapd, email=None) as h:
            with pytest.raises(HookFailed) as failed:
                await h.hook("after_start")
            h.manager.values["input:lldap.admin_email"] = EMAIL  # the person answers
            done = await h.hook("inputs_answered", answered=["lldap.admin_email"])
            return failed.value, done

    failed, done = run(scenario())
    assert failed.status == 503
    assert failed.body.code == "not_ready" and failed.body.retryable
    assert "e-mail" in failed.body.detail
    assert f"created {ADMIN_DN}" in done.changes
    assert f"created {BASE_DN}" not in done.changes  # the first call made it already


def test_add_person_creates_someone_who_can_bind(media_manifest, slapd):
    password = "correct horse battery"

    async def scenario():
        async with harness(media_manifest, slapd) as h:
            await h.hook("after_start")
            added = await h.action("add_person", {
                "uid": "ada", "full_name": "Ada Lovelace", "email": "ada@example.com",
                "password": password,
            })
            with pytest.raises(HookFailed) as twice:
                await h.action("add_person", {"uid": "ada", "full_name": "Ada", "password": password})
            return added, twice.value

    added, twice = run(scenario())
    dn = f"uid=ada,ou=people,{BASE_DN}"
    assert added.data == {"dn": dn}
    assert password not in added.model_dump_json()
    assert can_bind(slapd, dn, password)
    tree = snapshot(slapd)
    assert tree[dn]["givenName"] == ["Ada"] and tree[dn]["sn"] == ["Lovelace"]
    assert dn in tree[f"cn=users,ou=groups,{BASE_DN}"]["uniqueMember"]
    assert dn not in tree[f"cn=admins,ou=groups,{BASE_DN}"]["uniqueMember"]
    assert twice.body.code == "hook_failed" and not twice.body.retryable
    assert "exists already" in twice.body.detail
    assert password not in twice.body.model_dump_json()


def test_reset_password_and_add_to_group(media_manifest, slapd):
    async def scenario():
        async with harness(media_manifest, slapd) as h:
            await h.hook("after_start")
            await h.action("add_person", {"uid": "bob", "full_name": "Bob", "password": "first-password"})
            await h.action("reset_password", {"uid": "bob", "password": "second-password"})
            grouped = await h.action("add_to_group", {"uid": "bob", "group": "admins"})
            regrouped = await h.action("add_to_group", {"uid": "bob", "group": "admins"})
            with pytest.raises(HookFailed) as no_group:
                await h.action("add_to_group", {"uid": "bob", "group": "wizards"})
            with pytest.raises(HookFailed) as nobody:
                await h.action("reset_password", {"uid": "carol", "password": "whatever-123"})
            with pytest.raises(HookFailed) as bad_uid:
                await h.action("reset_password", {"uid": "x,ou=evil", "password": "whatever-123"})
            return grouped, regrouped, no_group.value, nobody.value, bad_uid.value

    grouped, regrouped, no_group, nobody, bad_uid = run(scenario())
    dn = f"uid=bob,ou=people,{BASE_DN}"
    assert can_bind(slapd, dn, "second-password")
    assert not can_bind(slapd, dn, "first-password")
    assert grouped.changes == [f"added {dn} to cn=admins,ou=groups,{BASE_DN}"]
    assert regrouped.changes == []
    assert dn in snapshot(slapd)[f"cn=admins,ou=groups,{BASE_DN}"]["uniqueMember"]
    assert no_group.body.detail == "there is no group 'wizards'"
    assert no_group.body.hint == "groups: admins, users"
    assert "no person 'carol'" in nobody.body.detail
    assert "user name" in bad_uid.body.detail


def test_action_fields_are_checked_before_the_directory_is_touched(media_manifest, slapd):
    async def scenario():
        async with harness(media_manifest, slapd) as h:
            with pytest.raises(HookFailed) as failed:
                await h.action("add_person", {"uid": "ada", "email": "not-an-address"})
            return failed.value

    failed = run(scenario())
    assert failed.status == 422
    assert set(failed.body.fields) == {"email", "full_name", "password"}
    assert snapshot(slapd) == {}  # nothing was written (the base does not even exist)


def test_a_wrong_admin_password_is_reported_without_the_password(media_manifest, slapd):
    wrong = "not-the-directory-password-0123"

    async def scenario():
        async with harness(media_manifest, slapd, password=wrong) as h:
            with pytest.raises(HookFailed) as failed:
                await h.hook("after_start")
            health = await h.health()
            return failed.value, health

    failed, health = run(scenario())
    assert failed.status == 500
    assert "refused the administrator's password" in failed.body.detail
    assert wrong not in failed.body.model_dump_json()
    assert health.healthy is False


def test_an_unreachable_directory_is_a_retryable_error(media_manifest, slapd):
    async def scenario():
        h = Harness(ldap_mm.mm, media_manifest, "lldap", values(slapd),
                    service_host="127.0.0.1", service_ports={"ldap": free_port()})
        async with h:
            with pytest.raises(HookFailed) as failed:
                await h.hook("after_start")
            return failed.value

    failed = run(scenario())
    assert failed.body.retryable
    assert "cannot reach the directory" in failed.body.detail
    assert "Traceback" not in failed.body.detail


def test_the_admin_password_stays_out_of_the_directorys_repr():
    d = ldap_mm.Directory(host="lldap", port=3890, base=BASE_DN, bind_candidates=(ADMIN_DN,),
                          password="ldap-admin-pw-0123456789")
    assert "ldap-admin-pw-0123456789" not in repr(d) and ADMIN_DN in repr(d)

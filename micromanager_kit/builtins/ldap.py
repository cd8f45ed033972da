"""The ``ldap`` micromanager: prepares a directory for a homelab's sign-in.

Once the directory runs it makes sure the tree a homelab expects exists:
the base entry, ``ou=people``, ``ou=groups``, the administrator
(``uid=admin,ou=people,BASE``, with the e-mail the person gave the wizard and
the generated ``ldap_admin_password``) and the groups ``admins`` and
``users``. Every step looks first and changes only what differs, so running it
again changes nothing (that is how after-start, inputs-answered and
reconfigure can all simply call it).

It speaks plain LDAP (ldap3), so it serves OpenLDAP and lldap alike:

* groups are ``groupOfUniqueNames`` with ``uniqueMember`` (what lldap
  exposes; in OpenLDAP's core schema it needs at least one member, which is
  why the administrator is a member of both groups); an existing
  ``groupOfNames`` group is extended through ``member`` instead;
* passwords are set with the Password Modify extended operation (RFC 3062),
  which both implement (and which hashes on OpenLDAP, unlike writing
  ``userPassword``);
* it binds as the first of: the service's ``LDAP_BIND_DN`` environment
  variable, ``cn=admin,BASE`` (OpenLDAP's usual root DN), and lldap's admin
  ``uid=${LLDAP_LDAP_USER_DN:-admin},ou=people,BASE``, with the password from
  ``LLDAP_LDAP_USER_PASS`` / ``LDAP_ADMIN_PASSWORD`` / the
  ``ldap_admin_password`` secret. On lldap the base and the two OUs already
  exist and the admin user is the one lldap created.

Actions offered in the manager: add a person, reset a password, add a person
to a group.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

with warnings.catch_warnings():
    # ldap3 2.9 imports names pyasn1 deprecated; nothing for mora users to act on
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3
    from ldap3.core.exceptions import LDAPException
    from ldap3.utils.conv import escape_filter_chars
    from ldap3.utils.dn import escape_rdn, parse_dn

from mora_dsl.builtins import base_dn

from ..context import HookContext
from ..errors import HookError, NotReady
from ..micromanager import Field, Micromanager

mm = Micromanager("ldap", version="0.1.0")

ADMIN_UID = "admin"
GROUPS = ("admins", "users")
PERSON_CLASSES = ["top", "person", "organizationalPerson", "inetOrgPerson"]
_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TIMEOUT = 10


@dataclass(frozen=True)
class Directory:
    """Where the directory is and how to administer it, from the service's config."""

    host: str
    port: int
    base: str
    bind_candidates: tuple[str, ...]
    password: str = field(repr=False)  # never in a log line or a failed assert

    @property
    def people(self) -> str:
        return f"ou=people,{self.base}"

    @property
    def groups(self) -> str:
        return f"ou=groups,{self.base}"

    def person_dn(self, uid: str) -> str:
        return f"uid={escape_rdn(uid)},{self.people}"

    def group_dn(self, name: str) -> str:
        return f"cn={escape_rdn(name)},{self.groups}"


def directory(ctx: HookContext) -> Directory:
    """The :class:`Directory` of the service; :class:`NotReady` while a value is unknown."""
    base = ctx.env("LLDAP_LDAP_BASE_DN", "") or ctx.env("LDAP_BASE_DN", "")
    if not base:
        base = base_dn(ctx.param("domain"))
    password = (
        ctx.env("LLDAP_LDAP_USER_PASS", "")
        or ctx.env("LDAP_ADMIN_PASSWORD", "")
        or ctx.secret("ldap_admin_password")
    )
    ctx.add_secret(password)  # an environment value may be a literal, not a secret reference
    lldap_admin = ctx.env("LLDAP_LDAP_USER_DN", "") or ADMIN_UID
    candidates = [
        ctx.env("LDAP_BIND_DN", ""),
        f"cn=admin,{base}",
        f"uid={escape_rdn(lldap_admin)},ou=people,{base}",
    ]
    default_port = 3890 if any(k.startswith("LLDAP_") for k in ctx.config.environment) else 389
    return Directory(
        host=ctx.host,
        port=ctx.port("ldap", default_port),
        base=base,
        bind_candidates=tuple(dict.fromkeys(c for c in candidates if c)),
        password=password,
    )


# --------------------------------------------------------------------------- connection


def _server(d: Directory) -> ldap3.Server:
    # A new Server each time: ldap3 keeps a refused Server "unavailable" for a while.
    return ldap3.Server(d.host, port=d.port, get_info=ldap3.NONE, connect_timeout=_TIMEOUT)


def try_bind(d: Directory, dn: str, password: str) -> bool:
    """Whether ``dn`` can bind with ``password`` (a fresh connection, closed again)."""
    conn = ldap3.Connection(_server(d), user=dn, password=password, receive_timeout=_TIMEOUT)
    try:
        return bool(conn.bind())
    finally:
        conn.unbind()


@contextmanager
def admin_connection(d: Directory) -> Iterator[ldap3.Connection]:
    """A connection bound as the directory's administrator (the first candidate that works)."""
    bound: ldap3.Connection | None = None
    try:
        for dn in d.bind_candidates:
            conn = ldap3.Connection(_server(d), user=dn, password=d.password,
                                    receive_timeout=_TIMEOUT)
            if conn.bind():
                bound = conn
                break
            conn.unbind()
    except LDAPException as err:
        raise HookError(
            f"cannot reach the directory at ldap://{d.host}:{d.port} ({type(err).__name__})",
            hint="the directory may still be starting; retry in a moment",
        ) from None
    if bound is None:
        raise HookError(
            "the directory refused the administrator's password for "
            + ", ".join(d.bind_candidates),
            hint="the directory must use the project's ldap_admin_password as its admin password",
        )
    try:
        yield bound
    finally:
        bound.unbind()


def _check(conn: ldap3.Connection, what: str, ok: bool) -> None:
    if not ok:
        result = conn.result or {}
        raise HookError(f"{what} failed: {result.get('description', 'error')} "
                        f"{result.get('message', '')}".strip(), retryable=False)


def _entry(conn: ldap3.Connection, dn: str, attributes: Sequence[str]) -> dict[str, list[str]] | None:
    """The entry's attributes (lower-cased names) or ``None`` when it does not exist."""
    conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=list(attributes))
    if conn.result.get("result") == 32:  # noSuchObject
        return None
    _check(conn, f"reading {dn}", conn.result.get("result") == 0)
    if not conn.response:
        return None
    found = conn.response[0].get("raw_attributes", {})
    return {
        name.lower(): [v.decode() if isinstance(v, bytes) else str(v) for v in values]
        for name, values in found.items()
    }


def _same_dn(a: str, b: str) -> bool:
    def norm(dn: str) -> list[tuple[str, str]]:
        return [(attr.lower(), value.lower()) for attr, value, _ in parse_dn(dn)]

    try:
        return norm(a) == norm(b)
    except LDAPException:
        return a.lower() == b.lower()


# --------------------------------------------------------------------------- ensure steps


def ensure_base(conn: ldap3.Connection, d: Directory, ctx: HookContext) -> None:
    if _entry(conn, d.base, ["objectClass"]) is not None:
        return
    attr, value, _ = parse_dn(d.base)[0]
    classes = {
        "dc": ["top", "dcObject", "organization"],
        "o": ["top", "organization"],
        "ou": ["top", "organizationalUnit"],
    }.get(attr.lower())
    if classes is None:
        raise HookError(f"cannot create a base entry named {attr}=…", retryable=False,
                        hint="use a base DN made of dc= parts (base_dn(domain))")
    attributes = {attr: value}
    if attr.lower() == "dc":
        attributes["o"] = value
    _check(conn, f"adding {d.base}", conn.add(d.base, classes, attributes))
    ctx.note_change(f"created {d.base}")


def ensure_ou(conn: ldap3.Connection, dn: str, ctx: HookContext) -> None:
    if _entry(conn, dn, ["objectClass"]) is not None:
        return
    name = parse_dn(dn)[0][1]
    _check(conn, f"adding {dn}", conn.add(dn, ["top", "organizationalUnit"], {"ou": name}))
    ctx.note_change(f"created {dn}")


def ensure_person(
    conn: ldap3.Connection,
    d: Directory,
    ctx: HookContext,
    *,
    uid: str,
    full_name: str,
    email: str | None,
) -> str:
    """The person's DN; created when missing, ``mail`` and ``cn`` kept as given."""
    dn = d.person_dn(uid)
    found = _entry(conn, dn, ["cn", "mail"])
    if found is None:
        given, _, family = full_name.rpartition(" ")
        attributes: dict[str, object] = {"uid": uid, "cn": full_name, "sn": family or full_name}
        if given:
            attributes["givenName"] = given
        if email:
            attributes["mail"] = email
        _check(conn, f"adding {dn}", conn.add(dn, PERSON_CLASSES, attributes))
        ctx.note_change(f"created {dn}")
        return dn
    if email and [m.lower() for m in found.get("mail", [])] != [email.lower()]:
        _check(conn, f"updating {dn}", conn.modify(dn, {"mail": [(ldap3.MODIFY_REPLACE, [email])]}))
        ctx.note_change(f"set the e-mail of {dn}")
    return dn


def ensure_password(conn: ldap3.Connection, d: Directory, ctx: HookContext, dn: str,
                    password: str) -> None:
    """Set the password unless it already works (so a re-run writes nothing)."""
    if try_bind(d, dn, password):
        return
    set_password(conn, dn, password)
    ctx.note_change(f"set the password of {dn}")


def set_password(conn: ldap3.Connection, dn: str, password: str) -> None:
    ok = conn.extend.standard.modify_password(user=dn, new_password=password)
    _check(conn, f"setting the password of {dn}", bool(ok))


def ensure_group(conn: ldap3.Connection, d: Directory, ctx: HookContext, name: str,
                 members: Sequence[str]) -> None:
    dn = d.group_dn(name)
    found = _entry(conn, dn, ["objectClass", "uniqueMember", "member"])
    if found is None:
        _check(conn, f"adding {dn}", conn.add(dn, ["top", "groupOfUniqueNames"],
                                              {"cn": name, "uniqueMember": list(members)}))
        ctx.note_change(f"created {dn}")
        return
    classes = {c.lower() for c in found.get("objectclass", [])}
    attr = "member" if "groupofnames" in classes and "groupofuniquenames" not in classes else "uniqueMember"
    current = found.get(attr.lower(), [])
    missing = [m for m in members if not any(_same_dn(m, c) for c in current)]
    if missing:
        _check(conn, f"updating {dn}", conn.modify(dn, {attr: [(ldap3.MODIFY_ADD, missing)]}))
        ctx.note_change(f"added {', '.join(missing)} to {dn}")


# --------------------------------------------------------------------------- hooks


def bootstrap(ctx: HookContext) -> str:
    """Base, OUs, the administrator, the groups; idempotent."""
    d = directory(ctx)
    with admin_connection(d) as conn:
        ensure_base(conn, d, ctx)
        ensure_ou(conn, d.people, ctx)
        ensure_ou(conn, d.groups, ctx)
        try:
            email = ctx.input("admin_email")
        except NotReady:
            raise NotReady("the administrator's e-mail is not answered yet",
                           hint="answer it in the wizard; the directory is set up then") from None
        admin = ensure_person(conn, d, ctx, uid=ADMIN_UID, full_name="Administrator", email=email)
        ensure_password(conn, d, ctx, admin, d.password)
        for group in GROUPS:
            ensure_group(conn, d, ctx, group, [admin])
    return "the directory is ready" if ctx.changes else "the directory was already set up"


mm.after_start(bootstrap)
mm.inputs_answered(bootstrap)
mm.reconfigure(bootstrap)


@mm.health
def health(ctx: HookContext) -> bool:
    d = directory(ctx)
    with admin_connection(d):
        return True


def _uid(ctx: HookContext) -> str:
    uid = str(ctx.values["uid"]).strip()
    if not _UID.match(uid):
        raise HookError("a user name is letters, digits, '.', '_' or '-' (at most 64)",
                        retryable=False)
    return uid


def _existing_person(conn: ldap3.Connection, d: Directory, uid: str) -> str:
    dn = d.person_dn(uid)
    if _entry(conn, dn, ["uid"]) is None:
        raise HookError(f"there is no person {uid!r} in {d.people}", retryable=False)
    return dn


@mm.action(
    "add_person",
    title="Add a person",
    help="Creates a sign-in for someone in your homelab and adds them to the group users.",
    fields=[
        Field("uid", "User name", help="What they type to sign in, e.g. ada"),
        Field("full_name", "Full name"),
        Field("email", "E-mail", type="email", required=False),
        Field("password", "Password", type="secret", help="At least 8 characters"),
    ],
)
def add_person(ctx: HookContext) -> dict[str, str]:
    uid = _uid(ctx)
    password = str(ctx.values["password"])
    if len(password) < 8:
        raise HookError("the password needs at least 8 characters", retryable=False)
    d = directory(ctx)
    with admin_connection(d) as conn:
        conn.search(d.people, f"(uid={escape_filter_chars(uid)})", search_scope=ldap3.LEVEL,
                    attributes=["uid"])
        if conn.response and any(r.get("type") == "searchResEntry" for r in conn.response):
            raise HookError(f"a person {uid!r} exists already", retryable=False,
                            hint="pick another user name, or reset their password")
        dn = ensure_person(conn, d, ctx, uid=uid, full_name=str(ctx.values["full_name"]).strip(),
                           email=ctx.values.get("email"))
        set_password(conn, dn, password)
        ensure_group(conn, d, ctx, "users", [dn])
    return {"dn": dn}


@mm.action(
    "reset_password",
    title="Reset a password",
    fields=[Field("uid", "User name"), Field("password", "New password", type="secret")],
)
def reset_password(ctx: HookContext) -> dict[str, str]:
    uid = _uid(ctx)
    d = directory(ctx)
    with admin_connection(d) as conn:
        dn = _existing_person(conn, d, uid)
        set_password(conn, dn, str(ctx.values["password"]))
    ctx.note_change(f"set the password of {dn}")
    return {"dn": dn}


@mm.action(
    "add_to_group",
    title="Add a person to a group",
    fields=[Field("uid", "User name"), Field("group", "Group", help="e.g. admins or users")],
)
def add_to_group(ctx: HookContext) -> dict[str, str]:
    uid = _uid(ctx)
    group = str(ctx.values["group"]).strip()
    d = directory(ctx)
    with admin_connection(d) as conn:
        dn = _existing_person(conn, d, uid)
        if _entry(conn, d.group_dn(group), ["cn"]) is None:
            conn.search(d.groups, "(cn=*)", search_scope=ldap3.LEVEL, attributes=["cn"])
            names = sorted(str(r["attributes"]["cn"][0]) for r in conn.response or []
                           if r.get("type") == "searchResEntry" and r["attributes"].get("cn"))
            raise HookError(f"there is no group {group!r}", retryable=False,
                            hint="groups: " + ", ".join(names) if names else None)
        ensure_group(conn, d, ctx, group, [dn])
    return {"dn": dn, "group": d.group_dn(group)}

"""A complete small micromanager for Gitea, written with ``micromanager_kit`` (not a built-in).

What it does, once Gitea runs (after-start; again on inputs-answered and reconfigure,
which is safe because every step looks before it changes anything):

1. checks that Gitea answers (``GET /api/v1/version``), else fails with a retryable
   error (the manager retries with backoff, and the wizard shows a retry button);
2. makes sure the micromanager holds a working API token of the administrator: the
   one it reported before if it still works (``GET /api/v1/user``), else a new one
   named ``mora`` (``POST /api/v1/users/admin/tokens`` with the admin's password;
   an old ``mora`` token is deleted first, since names are unique), which it
   **reports** as the service's ``api_token`` input, so the wizard does not ask;
3. **requests an input** the ``.mora`` file does not declare, the organisation to
   create, and creates it (``POST /api/v1/orgs``) once the person has answered.

Actions shown as tools in the manager: add a person (``POST /api/v1/admin/users``)
and create a repository (``POST /api/v1/orgs/{org}/repos`` or, for a person,
``POST /api/v1/admin/users/{user}/repos``). Health: Gitea's version endpoint.

Every request Gitea sees is built in :class:`Gitea` (one place for the request
shapes, from https://docs.gitea.com/api/1.22/), so a test double can be written
against the same list.

Run it beside the manager (see ``docs/micromanagers.md``)::

    MORA_MICROMANAGER_TOKEN=$(cat DATA/micromanagers/gitea.token) \\
        python examples/gitea-micromanager/gitea_micromanager.py \\
        --manager http://127.0.0.1:8080 --port 8766 --service-host 127.0.0.1
"""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from micromanager_kit import Field, HookContext, HookError, Micromanager, NotReady

mm = Micromanager("gitea", version="0.1.0")

ADMIN = "admin"  # the user the service's args create with Gitea's CLI
TOKEN_NAME = "mora"
TOKEN_SCOPES = ["write:admin", "write:organization", "write:repository", "write:user"]
TIMEOUT = 15.0


class Gitea:
    """The few calls of Gitea's REST API this micromanager makes (``/api/v1``)."""

    def __init__(self, http: httpx.AsyncClient, token: str | None = None) -> None:
        self.http = http
        self.token = token

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}

    async def version(self) -> str:
        response = await self.http.get("/api/v1/version")
        response.raise_for_status()
        return str(response.json()["version"])

    async def token_works(self, token: str) -> bool:
        response = await self.http.get("/api/v1/user", headers={"Authorization": f"token {token}"})
        return response.status_code == 200

    async def create_token(self, user: str, password: str) -> str:
        """A new token named :data:`TOKEN_NAME` (the old one of that name deleted first)."""
        basic = httpx.BasicAuth(user, password)
        gone = await self.http.delete(f"/api/v1/users/{user}/tokens/{TOKEN_NAME}", auth=basic)
        if gone.status_code == 401:
            raise HookError(f"Gitea refused the password of {user!r}", retryable=False,
                            hint="the service's args create the administrator with the "
                            "generated admin_password; check that they ran")
        if gone.status_code not in (204, 404):
            gone.raise_for_status()
        response = await self.http.post(f"/api/v1/users/{user}/tokens", auth=basic,
                                        json={"name": TOKEN_NAME, "scopes": TOKEN_SCOPES})
        response.raise_for_status()
        return str(response.json()["sha1"])  # shown once, at creation

    async def org_exists(self, name: str) -> bool:
        response = await self.http.get(f"/api/v1/orgs/{name}", headers=self._auth())
        if response.status_code == 404:
            return False
        response.raise_for_status()
        return True

    async def create_org(self, name: str) -> None:
        response = await self.http.post("/api/v1/orgs", headers=self._auth(),
                                        json={"username": name, "visibility": "private"})
        response.raise_for_status()

    async def create_user(self, username: str, email: str, password: str) -> dict[str, Any]:
        response = await self.http.post("/api/v1/admin/users", headers=self._auth(), json={
            "username": username, "email": email, "password": password,
            "must_change_password": True, "send_notify": False})
        if response.status_code == 422:
            raise HookError(f"Gitea refused the person: {_message(response)}", retryable=False)
        response.raise_for_status()
        return dict(response.json())

    async def create_repo(self, owner: str, name: str, private: bool) -> dict[str, Any]:
        body = {"name": name, "private": private, "auto_init": True, "default_branch": "main"}
        path = (f"/api/v1/orgs/{owner}/repos" if await self.org_exists(owner)
                else f"/api/v1/admin/users/{owner}/repos")
        response = await self.http.post(path, headers=self._auth(), json=body)
        if response.status_code in (404, 409, 422):
            raise HookError(f"Gitea refused the repository: {_message(response)}",
                            retryable=False)
        response.raise_for_status()
        return dict(response.json())


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message") or response.reason_phrase)
    except ValueError:
        return response.reason_phrase


@asynccontextmanager
async def gitea(ctx: HookContext, token: str | None = None) -> AsyncIterator[Gitea]:
    """A :class:`Gitea` for the service: where the sidecar reaches it (``ctx.host``/``ctx.port``)."""
    async with httpx.AsyncClient(base_url=f"http://{ctx.host}:{ctx.port('http')}",
                                 timeout=TIMEOUT) as http:
        try:
            yield Gitea(http, token)
        except httpx.TransportError as err:
            raise HookError(f"Gitea does not answer ({type(err).__name__})",
                            hint="it may still be starting; the manager retries") from None
        except httpx.HTTPStatusError as err:
            raise HookError(f"Gitea answered {err.response.status_code} to "
                            f"{err.request.method} {err.request.url.path}") from None


async def api_token(ctx: HookContext, g: Gitea) -> str:
    """The administrator's token: the reported one while it works, else a new one (reported)."""
    known = ctx.input("api_token", None)
    if known and await g.token_works(str(known)):
        return str(known)
    token = await g.create_token(ADMIN, ctx.secret("admin_password"))
    ctx.report("api_token", token)
    ctx.note_change(f"created the API token {TOKEN_NAME!r} of {ADMIN}")
    return token


@mm.after_start
@mm.inputs_answered
@mm.reconfigure
async def bootstrap(ctx: HookContext) -> str:
    """Token, then the organisation once its name is known; idempotent."""
    async with gitea(ctx) as g:
        version = await g.version()
        g.token = await api_token(ctx, g)
        org = ctx.request_input(
            "organisation", "Organisation on Gitea",
            help="Created for the homelab's repositories, e.g. home", default="home")
        if org is None:
            return f"Gitea {version} is ready; waiting for the organisation's name"
        if not await g.org_exists(str(org)):
            await g.create_org(str(org))
            ctx.note_change(f"created the organisation {org}")
    return f"Gitea {version} is set up"


@mm.health
async def health(ctx: HookContext) -> str:
    async with gitea(ctx) as g:
        return f"Gitea {await g.version()}"


def _token(ctx: HookContext) -> str:
    token = ctx.input("api_token", None)
    if not token:
        raise NotReady("the API token is not known yet",
                       hint="the after-start hook creates it; retry it on the service's page")
    return str(token)


@mm.action("add_person", title="Add a person", help="A Gitea account; they choose a new "
           "password at their first sign-in.", fields=[
               Field("username", "User name"), Field("email", "E-mail", type="email"),
               Field("password", "First password", type="secret")])
async def add_person(ctx: HookContext) -> dict[str, str]:
    async with gitea(ctx, _token(ctx)) as g:
        user = await g.create_user(str(ctx.values["username"]), str(ctx.values["email"]),
                                   str(ctx.values["password"]))
    ctx.note_change(f"created the account {user['login']}")
    return {"login": str(user["login"])}


@mm.action("create_repository", title="Create a repository", fields=[
    Field("owner", "Owner", help="An organisation or a person"), Field("name", "Name"),
    Field("private", "Private", type="bool", default=True)])
async def create_repository(ctx: HookContext) -> dict[str, str]:
    async with gitea(ctx, _token(ctx)) as g:
        repo = await g.create_repo(str(ctx.values["owner"]), str(ctx.values["name"]),
                                   bool(ctx.values["private"]))
    ctx.note_change(f"created {repo['full_name']}")
    return {"repository": str(repo["full_name"]), "clone_url": str(repo["clone_url"])}


def main(argv: list[str] | None = None) -> None:
    """Serve the sidecar: what ``mora micromanager run`` does for a built-in."""
    import uvicorn

    from micromanager_kit.client import ManagerClient

    parser = argparse.ArgumentParser(description="the gitea micromanager (a mora example)")
    parser.add_argument("--manager", required=True, help="the manager's base URL")
    parser.add_argument("--service", default="gitea")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--service-host", default=None, help="where Gitea answers")
    args = parser.parse_args(argv)
    token = os.environ["MORA_MICROMANAGER_TOKEN"]  # never on the command line
    client = ManagerClient(args.manager, token, args.service)
    app = mm.app(service=args.service, client=client, hook_token=secrets.token_urlsafe(32),
                 advertise_url=f"http://{args.host}:{args.port}", service_host=args.service_host)
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()

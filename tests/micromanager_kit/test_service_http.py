"""The HTTP plumbing the built-ins' service clients share (``builtins/_service_http.py``).

The *arr, Jellyfin and Jellyseerr tests drive it through their clients; these
pin the parts no single client shows on its own: secrets masked in an error
body before it is shortened (a secret cut at the limit must not leak its
start), the client's own error type for every failure, and the pool closed
by ``async with``. Requests go to an ``httpx.MockTransport``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from pydantic import BaseModel, TypeAdapter

from micromanager_kit.builtins._service_http import ServiceClient, ServiceError

SECRET = "k3y-" + "s" * 60


class DemoError(ServiceError):
    """The demo service's own error type."""


class Demo(ServiceClient):
    error = DemoError
    refused_statuses = (401,)

    def _error_detail(self, response: httpx.Response) -> str:
        return response.text


class Status(BaseModel):
    version: str


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> Demo:
    client = Demo("Demo", "http://demo:1234/", timeout=5, api_root="/api")
    client._http = httpx.AsyncClient(
        base_url="http://demo:1234/api", transport=httpx.MockTransport(handler)
    )
    return client


def _fails(client: Demo, *, headers: dict[str, str] | None = None,
           secrets: tuple[str, ...] = ()) -> DemoError:
    async def go() -> None:
        async with client:
            await client._send("GET", "/x", what="GET /api/x", headers=headers or {},
                               secrets=secrets)

    with pytest.raises(DemoError) as raised:
        asyncio.run(go())
    assert client._http.is_closed
    return raised.value


def test_a_secret_across_the_length_limit_is_masked_whole() -> None:
    body = "x" * 470 + f"bad key {SECRET} given"  # the secret straddles character 500
    error = _fails(_client(lambda r: httpx.Response(400, text=body)), secrets=(SECRET,))
    assert error.status == 400
    assert str(error).startswith("Demo failed GET /api/x (HTTP 400): ")
    assert SECRET[:8] not in str(error) and "***" in str(error)


def test_refused_and_unreachable_are_the_clients_error_without_the_url_details() -> None:
    refused = _fails(_client(lambda r: httpx.Response(401)))
    assert refused.status == 401 and str(refused) == "Demo refused GET /api/x (HTTP 401)"

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect, sent {request.headers.get('X-Key')}")

    error = _fails(_client(down), headers={"X-Key": SECRET})
    assert str(error) == "Demo at http://demo:1234 could not be reached (GET /api/x): ConnectError"


def test_a_body_of_another_shape_is_the_clients_error() -> None:
    client = _client(lambda r: httpx.Response(200, json={"unexpected": True}))

    async def go() -> Status:
        async with client:
            response = await client._send("GET", "/status", what="GET /api/status", headers={})
            return client._parse(TypeAdapter(Status), response, "GET /api/status")

    with pytest.raises(DemoError, match="answered GET /api/status with a body mora does not "
                       r"understand \(HTTP 200\)"):
        asyncio.run(go())

    ok = _client(lambda r: httpx.Response(200, json={"version": "1.2"}))

    async def fine() -> Status:
        async with ok:
            response = await ok._send("GET", "/status", what="GET /api/status", headers={})
            return ok._parse(TypeAdapter(Status), response, "GET /api/status")

    assert asyncio.run(fine()).version == "1.2"

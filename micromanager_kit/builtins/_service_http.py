"""The HTTP plumbing the built-ins' service clients share (*arr apps, Jellyfin, Jellyseerr).

Each client must turn a transport failure, a refused credential, an error
status and a body it cannot read into its own error type, with a message that
names the service and the call and never a secret; and it must close its
connection pool when done. Written out in each client, that logic was three
copies of the same ``try``/``except`` and status checks, free to drift apart
(one copy scrubbed secrets from an error body, the others had no such step).

What stays in each client is what really differs: how it authenticates and
serializes a body (:meth:`ServiceClient._send` takes them ready-made), which
statuses mean "refused" and how that is worded (:attr:`~ServiceClient.refused_statuses`,
:meth:`~ServiceClient._refused`), and which part of an error body is worth
passing on (:meth:`~ServiceClient._error_detail`).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Annotated, ClassVar, Self, TypeVar

import httpx
from pydantic import PlainSerializer, SecretStr, TypeAdapter, ValidationError

from ..errors import scrub

_T = TypeVar("_T")

#: A secret that masks itself in ``repr`` and logs, yet goes out in request bodies.
WireSecret = Annotated[
    SecretStr, PlainSerializer(lambda s: s.get_secret_value(), return_type=str, when_used="json")
]


class ServiceError(RuntimeError):
    """A service refused or failed a request; the message names the call, never a secret."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ServiceClient:
    """An ``httpx.AsyncClient`` for one service, with uniform errors; use it as ``async with``."""

    #: The error type raised; each client has its own so its micromanager can catch it.
    error: ClassVar[type[ServiceError]] = ServiceError
    #: The statuses that mean the credentials were not accepted.
    refused_statuses: ClassVar[tuple[int, ...]] = (401, 403)

    def __init__(self, name: str, base_url: str, *, timeout: float, api_root: str = "") -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url + api_root, timeout=timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        headers: dict[str, str],
        content: str | None = None,
        params: dict[str, str] | None = None,
        secrets: Sequence[str] = (),
    ) -> httpx.Response:
        """Send one request; any failure raises :attr:`error` naming ``what`` (e.g. ``GET /x``).

        ``secrets`` (the key, passwords in the body) are masked in an error
        body's detail, in case the service echoes what it was sent.
        """
        try:
            response = await self._http.request(
                method, path, content=content, params=params, headers=headers
            )
        except httpx.HTTPError as exc:
            # Only the exception's type: httpx's message holds the URL, never a header or body.
            raise self.error(
                f"{self.name} at {self.base_url} could not be reached ({what}): "
                f"{type(exc).__name__}"
            ) from None
        if response.status_code in self.refused_statuses:
            raise self.error(
                self._refused(what, response.status_code), status=response.status_code
            )
        if response.is_error:
            # masked before shortening, which could cut a secret in two
            detail = scrub(self._error_detail(response), secrets)
            raise self.error(
                f"{self.name} failed {what} (HTTP {response.status_code})"
                + (f": {detail}" if detail else ""),
                status=response.status_code,
            )
        return response

    def _refused(self, what: str, status: int) -> str:
        """The message for a refused credential: what to check, in the service's terms."""
        return f"{self.name} refused {what} (HTTP {status})"

    def _error_detail(self, response: httpx.Response) -> str:
        """The service's own explanation in an error body, if it has one worth showing."""
        return ""

    def _parse(self, adapter: TypeAdapter[_T], response: httpx.Response, what: str) -> _T:
        """The body as ``adapter``'s type; a body of another shape is the service's error."""
        try:
            return adapter.validate_json(response.content)
        except ValidationError:
            raise self.error(
                f"{self.name} answered {what} with a body mora does not understand "
                f"(HTTP {response.status_code})"
            ) from None

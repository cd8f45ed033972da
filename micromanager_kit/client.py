"""The sidecar → manager client: register, read config, report, request inputs.

The manager is a single process that restarts during updates of itself, so
every call retries: connection errors, timeouts, 5xx and 429, with
exponential backoff and jitter (so many sidecars restarting together do not
hammer the manager in lockstep), honouring ``Retry-After``. Retrying a POST is
safe: registration and input requests are idempotent by content, and a report
carries an idempotency key the manager remembers.

Logs say which call, which status and which attempt, never a header or a
body: the token and the reported values are secrets.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, JsonValue, ValidationError

from . import contract as c
from .errors import ManagerError

log = logging.getLogger("micromanager_kit.client")

M = TypeVar("M", bound=BaseModel)

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class ManagerClient:
    """Calls the manager's ``/api/v1/micromanagers/{service}/*`` with the service's token.

    ``attempts`` bounds the tries of one call (``None``: until it succeeds, for
    the registration loop); the delay before try *n* is drawn from
    ``[d/2, d]`` with ``d = min(max_delay, base_delay * 2**n)``.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        service: str,
        *,
        timeout: float = 10.0,
        attempts: int | None = 8,
        base_delay: float = 0.25,
        max_delay: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.service = service
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._token = token
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport,
        )

    def __repr__(self) -> str:
        return f"ManagerClient({str(self._http.base_url)!r}, service={self.service!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ManagerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ calls

    async def register(self, registration: c.Registration) -> c.RegistrationAccepted:
        return await self._call("POST", c.PATH_REGISTER, c.RegistrationAccepted,
                                body=registration, forever=True)

    async def read_config(self, keys: Sequence[str] | None = None) -> c.ConfigResponse:
        """The service's scoped config; ``keys`` asks for just those ref keys."""
        params = httpx.QueryParams([("key", k) for k in keys]) if keys is not None else None
        return await self._call("GET", c.PATH_CONFIG, c.ConfigResponse, params=params)

    async def report(
        self, values: Mapping[str, JsonValue], *, idempotency_key: str | None = None
    ) -> c.ReportAccepted:
        """Report values; every retry of this call reuses one idempotency key."""
        body = c.Report(idempotency_key=idempotency_key or str(uuid.uuid4()), values=dict(values))
        return await self._call("POST", c.PATH_REPORT, c.ReportAccepted, body=body,
                                headers={c.IDEMPOTENCY_HEADER: body.idempotency_key})

    async def request_inputs(self, inputs: Sequence[c.InputRequest]) -> c.InputRequestsAccepted:
        return await self._call("POST", c.PATH_INPUT_REQUESTS, c.InputRequestsAccepted,
                                body=c.InputRequests(inputs=list(inputs)))

    # ------------------------------------------------------------------ plumbing

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        # The exponent is capped: registration retries forever, and 2**attempt stops
        # converting to a float (OverflowError) after about a thousand attempts.
        ceiling = min(self.max_delay, self.base_delay * (2 ** min(attempt, 32)))
        wait = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait

    async def _call(
        self,
        method: str,
        path_template: str,
        model: type[M],
        *,
        body: BaseModel | None = None,
        headers: dict[str, str] | None = None,
        params: httpx.QueryParams | None = None,
        forever: bool = False,
    ) -> M:
        path = path_template.format(service=self.service)
        limit = None if forever else self.attempts
        payload = body.model_dump(mode="json") if body is not None else None
        all_headers = {"Authorization": f"{c.BEARER} {self._token}", **(headers or {})}
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = await self._http.request(
                    method, path, json=payload, headers=all_headers, params=params
                )
            except httpx.TransportError as err:  # refused, reset, timed out: the manager restarts
                problem = f"{type(err).__name__}"
            else:
                if response.status_code < 400:
                    return _parse(model, response, path)
                if response.status_code not in _RETRY_STATUS:
                    raise _refusal(method, path, response)
                problem = f"HTTP {response.status_code}"
                retry_after = _retry_after(response)
            attempt += 1
            if limit is not None and attempt >= limit:
                raise ManagerError(f"{method} {path}: the manager did not answer ({problem}) "
                                   f"after {attempt} attempts", code="unavailable")
            wait = self.delay(attempt - 1, retry_after)
            log.info("%s %s: %s, retry %d in %.1fs", method, path, problem, attempt, wait)
            await self._sleep(wait)


def _parse(model: type[M], response: httpx.Response, path: str) -> M:
    try:
        return model.model_validate(response.json())
    except (ValueError, ValidationError):
        raise ManagerError(f"{path}: the manager's answer does not match contract "
                           f"version {c.CONTRACT_VERSION}", status=response.status_code,
                           code="contract_version") from None


def _refusal(method: str, path: str, response: httpx.Response) -> ManagerError:
    detail: Any = None
    code = None
    try:
        data = response.json()
        detail, code = data.get("detail"), data.get("code")
    except (ValueError, AttributeError):
        pass
    if not isinstance(detail, str):
        detail = response.reason_phrase or "refused"
    return ManagerError(f"{method} {path}: {response.status_code} {detail}",
                        status=response.status_code, code=code)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None

"""Who may call the manager: the admin (session cookie) or the orchestrator (bearer token).

* The admin logs in with the password and gets a random session id in an
  HttpOnly, SameSite=Lax cookie; the server keeps only its SHA-256 (in the
  store, so sessions survive a restart) with the session's CSRF token.
* The orchestrator and scripts send ``Authorization: Bearer <API token>``.
* Forms carry a CSRF token: bound to the session when there is one, else a
  double-submit cookie (the login form). :func:`csrf_token` gives it to a
  template, :func:`verify_csrf` checks it (a dependency for POST routes).
  Bearer-token requests are not cookie-borne, so they skip the check.
* Failed logins are limited per client (default 5 a minute → 429).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import HTTPException, Request, Response, status
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .credentials import API_TOKEN, admin_password_ok
from .crypto import verify_token
from .settings import Settings
from .store import Store

SESSION_COOKIE = "mora_session"
CSRF_COOKIE = "mora_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

Principal = Literal["admin", "api"]


def _hash_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class LoginLimiter:
    """Failed login attempts per client within a sliding minute."""

    def __init__(self, per_minute: int, window: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, client: str) -> int | None:
        """Seconds to wait when ``client`` is over the limit, else ``None``."""
        now = time.monotonic()
        with self._lock:
            failures = self._recent(client, now)
            if len(failures) >= self.per_minute:
                return max(1, int(failures[0] + self.window - now) + 1)
        return None

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client, time.monotonic()).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


class Auth:
    """Checks credentials and manages sessions; one per app (``app.state.auth``)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.limiter = LoginLimiter(settings.login_attempts_per_minute)

    # ------------------------------------------------------------------ checks

    def check_password(self, request: Request, password: str) -> None:
        """Raise 429 when the client is over the limit, 401 on a wrong password."""
        client = client_key(request)
        wait = self.limiter.retry_after(client)
        if wait is not None:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                "too many failed logins; wait a minute and try again",
                headers={"Retry-After": str(wait)},
            )
        if not admin_password_ok(self.store, password):
            self.limiter.failed(client)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong password")
        self.limiter.succeeded(client)

    def bearer_ok(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        stored = self.store.credential(API_TOKEN)
        return stored is not None and verify_token(token.strip(), stored)

    def session_csrf(self, request: Request) -> str | None:
        """The CSRF token of the request's live admin session, or ``None``."""
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            return None
        found = self.store.session(_hash_id(session_id))
        return found[0] if found else None

    def principal(self, request: Request) -> Principal | None:
        if self.bearer_ok(request):
            return "api"
        if self.session_csrf(request) is not None:
            return "admin"
        return None

    # ------------------------------------------------------------------ sessions

    def start_session(self, response: Response) -> str:
        """Create a session, set its cookie on ``response``; returns its CSRF token."""
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        expires = datetime.now(UTC) + timedelta(hours=self.settings.session_hours)
        self.store.add_session(_hash_id(session_id), csrf, expires.isoformat(timespec="milliseconds"))
        response.set_cookie(
            SESSION_COOKIE,
            session_id,
            max_age=int(self.settings.session_hours * 3600),
            httponly=True,
            samesite="lax",
            secure=self.settings.secure_cookies,
            path="/",
        )
        return csrf

    def end_session(self, request: Request, response: Response) -> None:
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            self.store.delete_session(_hash_id(session_id))
        response.delete_cookie(SESSION_COOKIE, path="/")


def client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def get_auth(request: Request) -> Auth:
    auth: Auth = request.app.state.auth
    return auth


async def require_auth(request: Request) -> Principal:
    """Dependency: the admin session or the API token, else 401."""
    principal = get_auth(request).principal(request)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "log in, or send the API token as `Authorization: Bearer …`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.principal = principal
    return principal


async def require_auth_csrf(request: Request) -> Principal:
    """:func:`require_auth`, then :func:`verify_csrf_unsafe`, as one dependency.

    For a router whose every route needs both: FastAPI's cost of solving one
    dependency is larger than both checks together.
    """
    principal = await require_auth(request)
    if principal == "admin":  # a bearer token is not cookie-borne (verify_csrf skips it too)
        await verify_csrf_unsafe(request)
    return principal


# --------------------------------------------------------------------------- CSRF


def csrf_token(request: Request) -> str:
    """The CSRF token to put in a form (field ``csrf_token``).

    Logged in: the session's token. Not logged in (the login page): a
    double-submit token, whose cookie the middleware sets on the response.
    """
    session = get_auth(request).session_csrf(request)
    if session is not None:
        return session
    existing = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf_cookie", None)
    if existing:
        return str(existing)
    token = secrets.token_urlsafe(24)
    request.state.new_csrf_cookie = token
    return token


async def verify_csrf(request: Request) -> None:
    """Dependency for state-changing form posts: 403 unless the CSRF token matches.

    The token comes from the form field ``csrf_token`` or the ``X-CSRF-Token``
    header. Requests authenticated by bearer token are exempt (no ambient cookie).
    """
    auth = get_auth(request)
    if auth.bearer_ok(request):
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    expected = auth.session_csrf(request) or request.cookies.get(CSRF_COOKIE)
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "the form expired or came from elsewhere; reload the page"
        )


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def verify_csrf_unsafe(request: Request) -> None:
    """Dependency for a whole router: :func:`verify_csrf` on every state-changing method."""
    if request.method not in SAFE_METHODS:
        await verify_csrf(request)


class CsrfCookieMiddleware:
    """Sets the double-submit cookie on a response when :func:`csrf_token` minted one.

    Plain ASGI (it only adds a header to ``http.response.start``): the
    ``@app.middleware("http")`` form runs every request in a task of its own and
    cost about a tenth of a millisecond per request.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})  # what ``request.state`` reads and writes

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                token = state.get("new_csrf_cookie")
                if token:
                    carrier = Response()
                    carrier.set_cookie(
                        CSRF_COOKIE, token, httponly=True, samesite="lax",
                        secure=self.settings.secure_cookies, path="/",
                    )
                    headers = MutableHeaders(scope=message)
                    for key, value in carrier.raw_headers:
                        if key == b"set-cookie":
                            headers.append("set-cookie", value.decode("latin-1"))
            await send(message)

        await self.app(scope, receive, send_with_cookie)

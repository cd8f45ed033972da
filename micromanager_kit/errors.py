"""Errors a hook raises on purpose, and the scrubbing that keeps secrets out of messages.

A hook that fails is shown in the manager's wizard with its message and a
retry button, so a message is written for a person: what went wrong and what
to do. :class:`HookError` lets a hook say that precisely; any other exception
is turned into a short ``Type: message`` line. Either way the message passes
through :func:`scrub` first, with every secret value the hook could see.
"""

from __future__ import annotations

from collections.abc import Iterable

MASK = "********"
# Shorter strings are too likely to occur by chance ("a", "ok", "1") to be masked
# everywhere, and too short to be a generated secret.
_MIN_SECRET_LENGTH = 4
_MAX_DETAIL = 500


class HookError(Exception):
    """A hook failed in a way it understands; ``message`` is shown to the person as is.

    ``retryable`` says whether pressing "retry" can help (the service still
    starting: yes; a wrong password typed by the person: no). ``hint`` says what
    to do about it.
    """

    def __init__(self, message: str, *, hint: str | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.retryable = retryable


class NotReady(HookError):
    """A value the hook needs is not known yet (an unanswered input, a secret before deploy).

    The manager calls the hook again once it is (inputs-answered, reconfigure).
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, retryable=True)


class ManagerError(Exception):
    """The manager refused a request or could not be reached after the retries."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


def scrub(text: str, secrets: Iterable[object]) -> str:
    """``text`` with every secret value replaced by a mask, cut to a readable length.

    Longest first, so a secret that contains another is masked whole.
    """
    values = sorted(
        {str(s) for s in secrets if s is not None and len(str(s)) >= _MIN_SECRET_LENGTH},
        key=len,
        reverse=True,
    )
    for value in values:
        text = text.replace(value, MASK)
    if len(text) > _MAX_DETAIL:
        text = text[: _MAX_DETAIL - 1] + "…"
    return text


def describe(exc: BaseException, secrets: Iterable[object]) -> str:
    """One line for a person about ``exc``, secrets masked, no traceback."""
    if isinstance(exc, HookError):
        return scrub(exc.message, secrets)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return scrub(f"{name}: {message}" if message else name, secrets)

"""The admin password and the API token: set from the environment or generated once.

Only hashes are stored. A value given in ``MORA_ADMIN_PASSWORD`` /
``MORA_API_TOKEN`` replaces the stored hash when it differs (so changing the
variable changes the credential); with no variable and nothing stored, a value
is generated and returned so the server prints it exactly once. On later starts
the stored hash is kept and nothing is printed again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import SecretStr

from .crypto import generate_token, hash_password, hash_token, verify_password, verify_token
from .settings import Settings
from .store import Store

ADMIN_PASSWORD = "admin_password"
API_TOKEN = "api_token"


@dataclass(frozen=True)
class Generated:
    """Credentials generated on this start (plaintext, to print once), ``None`` when not."""

    admin_password: str | None = None
    api_token: str | None = None

    def __repr__(self) -> str:  # never show them in a traceback or a log line
        return (
            f"Generated(admin_password={'***' if self.admin_password else None}, "
            f"api_token={'***' if self.api_token else None})"
        )


def ensure_credentials(store: Store, settings: Settings) -> Generated:
    """Make the stored hashes match the settings; generate what is missing."""
    return Generated(
        admin_password=_ensure(store, ADMIN_PASSWORD, settings.admin_password, 12,
                               hash_password, verify_password),
        api_token=_ensure(store, API_TOKEN, settings.api_token, 32, hash_token, verify_token),
    )


def _ensure(
    store: Store,
    name: str,
    given: SecretStr | None,
    nbytes: int,
    hash_: Callable[[str], str],
    verify: Callable[[str, str], bool],
) -> str | None:
    """Store the hash of ``given`` when it differs; without it and nothing stored, generate
    a value (``nbytes`` random bytes) and return it (the only time it is known)."""
    stored = store.credential(name)
    if given is not None:
        value = given.get_secret_value()
        if stored is None or not verify(value, stored):
            store.set_credential(name, hash_(value))
        return None
    if stored is not None:
        return None
    generated = generate_token(nbytes)
    store.set_credential(name, hash_(generated))
    return generated


def admin_password_ok(store: Store, password: str) -> bool:
    """Whether ``password`` is the admin password (an empty one never is)."""
    stored = store.credential(ADMIN_PASSWORD)
    return stored is not None and bool(password) and verify_password(password, stored)

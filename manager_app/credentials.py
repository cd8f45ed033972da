"""The admin password and the API token: set from the environment or generated once.

Only hashes are stored. A value given in ``MORA_ADMIN_PASSWORD`` /
``MORA_API_TOKEN`` replaces the stored hash when it differs (so changing the
variable changes the credential); with no variable and nothing stored, a value
is generated and returned so the server prints it exactly once. On later starts
the stored hash is kept and nothing is printed again.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    generated_password = generated_token = None

    stored = store.credential(ADMIN_PASSWORD)
    if settings.admin_password is not None:
        password = settings.admin_password.get_secret_value()
        if stored is None or not verify_password(password, stored):
            store.set_credential(ADMIN_PASSWORD, hash_password(password))
    elif stored is None:
        generated_password = generate_token(12)
        store.set_credential(ADMIN_PASSWORD, hash_password(generated_password))

    stored = store.credential(API_TOKEN)
    if settings.api_token is not None:
        token = settings.api_token.get_secret_value()
        if stored is None or not verify_token(token, stored):
            store.set_credential(API_TOKEN, hash_token(token))
    elif stored is None:
        generated_token = generate_token(32)
        store.set_credential(API_TOKEN, hash_token(generated_token))

    return Generated(generated_password, generated_token)

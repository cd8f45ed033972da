"""Small cryptographic helpers: the answers key, password hashes, token hashes, 0600 files.

Answers are encrypted at rest with Fernet (AES-CBC + HMAC) under a key kept in
its own 0600 file beside the database, so a copied database alone reveals
nothing. The admin password is stored as an scrypt hash with a random salt
(slow on purpose); the API token, 32 random bytes, only needs a SHA-256 hash
that is cheap to check on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "answers.key"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}

__all__ = [
    "InvalidToken",
    "generate_token",
    "hash_password",
    "hash_token",
    "load_fernet",
    "verify_password",
    "verify_token",
    "write_private",
]


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (atomically, 0600 from the start)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_fernet(data_dir: Path) -> Fernet:
    """The answers cipher; its key is created on first use and kept 0600."""
    path = data_dir / KEY_FILE
    if not path.exists():
        write_private(path, Fernet.generate_key())
    if stat.S_IMODE(path.stat().st_mode) != 0o600:
        path.chmod(0o600)
    return Fernet(path.read_bytes().strip())


def generate_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$<salt hex>$<hash hex>``."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), **_SCRYPT)
    return hmac.compare_digest(digest.hex(), digest_hex)


def hash_token(token: str) -> str:
    return "sha256$" + hashlib.sha256(token.encode()).hexdigest()


def verify_token(token: str, stored: str) -> bool:
    return hmac.compare_digest(hash_token(token), stored)

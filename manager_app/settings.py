"""The manager's settings: what `mora manager serve` was told, plus its environment.

One immutable object built once at start-up and handed to :func:`manager_app.app.create_app`,
so nothing else reads the environment. The admin password and the API token
come from ``MORA_ADMIN_PASSWORD`` / ``MORA_API_TOKEN``; when those are unset the
credentials module generates them on first start (and prints them once), so
they are optional here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

ADMIN_PASSWORD_ENV = "MORA_ADMIN_PASSWORD"
API_TOKEN_ENV = "MORA_API_TOKEN"
#: Test-only: seconds the dry-run deployer sleeps per update, to kill the manager mid-update.
TEST_DEPLOY_DELAY_ENV = "MORA_MANAGER_TEST_DEPLOY_DELAY"
#: ``true`` behind TLS (the in-cluster Deployment sets it): the session cookie is ``Secure``.
SECURE_COOKIES_ENV = "MORA_SECURE_COOKIES"
#: JSON object of stack settings (storage class, cert-manager issuer, …) the in-cluster
#: manager applies to every update; set by the manager's Deployment from `mora up`.
STACK_SETTINGS_ENV = "MORA_STACK_SETTINGS"
#: The manager's own in-cluster URL, which the micromanager sidecars register with; the
#: manager's Deployment sets it. Unset: derived (see :func:`sidecar_manager_url`).
MANAGER_URL_ENV = "MORA_MANAGER_URL"
#: The namespace of the pod a process runs in (mounted with its service account token).
POD_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_data_dir() -> Path:
    """``$MORA_HOME/manager``, else ``$XDG_DATA_HOME/mora/manager`` (``~/.local/share/...``)."""
    if os.environ.get("MORA_HOME"):
        return Path(os.environ["MORA_HOME"]) / "manager"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "mora" / "manager"


class Settings(BaseModel):
    """Everything the manager is configured with; secrets are :class:`SecretStr`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The project folder the manager was started with (``None``: wait for a POSTed manifest).
    project: Path | None = None
    stack: str = "default"
    #: Params given with ``--set``; a POSTed manifest's params override them.
    params: dict[str, Any] = Field(default_factory=dict)
    #: :class:`stacks.config.StackConfig` settings (``storage_class``, ``cert_manager_issuer``,
    #: …) applied to every real update; the stack record's settings, sent by `mora up`.
    stack_settings: dict[str, Any] = Field(default_factory=dict)
    data_dir: Path = Field(default_factory=default_data_dir)
    dry_run: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    admin_password: SecretStr | None = None
    api_token: SecretStr | None = None
    #: Mark the session cookie ``Secure`` (behind TLS, as in the cluster).
    secure_cookies: bool = False
    session_hours: float = 12.0
    #: Failed logins per client per minute before the login answers 429.
    login_attempts_per_minute: int = 5
    #: Quiet time after a trigger before an update starts, so a burst becomes one update.
    debounce_seconds: float = 0.3
    #: An update starts at the latest this long after its first trigger, however busy.
    max_debounce_seconds: float = 3.0
    #: Attempts for a transient deployment failure (with exponential backoff from 1 s).
    transient_attempts: int = 3
    retry_backoff_seconds: float = 1.0
    #: Test-only: the dry-run deployer sleeps this long per update.
    test_deploy_delay: float = 0.0
    #: The URL micromanager sidecars reach the manager at (``MORA_MANAGER_URL``);
    #: ``None``: derived for the cluster (:func:`sidecar_manager_url`).
    manager_url: str | None = None

    @field_validator("stack_settings")
    @classmethod
    def _stack_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Refuse a bad value at start (a bad namespace would fail every update)."""
        from stacks.config import StackConfig

        try:
            StackConfig.model_validate(applied_stack_settings(value))
        except ValueError as err:
            problems = "; ".join(str(e["msg"]) for e in getattr(err, "errors", lambda: [])())
            raise ValueError(f"invalid stack settings: {problems or err}") from None
        return value

    @classmethod
    def from_env(cls, **values: Any) -> Settings:
        """Settings from keyword values, completed by the ``MORA_*`` environment variables."""
        env = os.environ
        if values.get("admin_password") is None and env.get(ADMIN_PASSWORD_ENV):
            values["admin_password"] = env[ADMIN_PASSWORD_ENV]
        if values.get("api_token") is None and env.get(API_TOKEN_ENV):
            values["api_token"] = env[API_TOKEN_ENV]
        if "test_deploy_delay" not in values and env.get(TEST_DEPLOY_DELAY_ENV):
            values["test_deploy_delay"] = float(env[TEST_DEPLOY_DELAY_ENV])
        if "secure_cookies" not in values and env.get(SECURE_COOKIES_ENV):
            values["secure_cookies"] = env[SECURE_COOKIES_ENV].strip().lower() in ("1", "true")
        if "stack_settings" not in values and env.get(STACK_SETTINGS_ENV):
            try:
                values["stack_settings"] = json.loads(env[STACK_SETTINGS_ENV])
            except ValueError:
                raise ValueError(f"{STACK_SETTINGS_ENV} is not a JSON object") from None
        if values.get("manager_url") is None and env.get(MANAGER_URL_ENV):
            values["manager_url"] = env[MANAGER_URL_ENV].strip()
        if values.get("data_dir") is None:
            values.pop("data_dir", None)
        return cls(**values)


def applied_stack_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """The stack settings the manager applies to every update: those of
    :data:`~manager_app.deployers.AutomationDeployer.SETTINGS` that have a value."""
    from .deployers import AutomationDeployer

    return {k: v for k, v in values.items() if k in AutomationDeployer.SETTINGS and v is not None}


def sidecar_manager_url(settings: Settings) -> str:
    """Where the services' micromanager sidecars reach this manager.

    ``settings.manager_url`` when given, else the manager's Service in the
    namespace this pod runs in (``mora-system`` outside a pod, e.g. a dry run):
    ``http://mora-manager.<namespace>.svc.<cluster domain>:8080``.
    """
    if settings.manager_url:
        return settings.manager_url
    from stacks.naming import MANAGER_NAMESPACE, manager_url

    namespace = MANAGER_NAMESPACE
    if POD_NAMESPACE_FILE.is_file():
        namespace = POD_NAMESPACE_FILE.read_text(encoding="utf-8").strip() or namespace
    cluster_domain = settings.stack_settings.get("cluster_domain") or "cluster.local"
    return manager_url(namespace, str(cluster_domain))

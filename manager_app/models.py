"""The REST API's request and response bodies (pydantic, so they appear in OpenAPI).

Kept apart from the routes so the wizard and micromanager clients can import
them without FastAPI routing. No response model has a field that could carry an
answer's value, and only :class:`RevealedSecret` carries a generated secret's.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mora_dsl.manifest import Manifest

from .core import SecretInfo
from .planner import Changes, PendingInput, ServicePlan
from .store import UpdateRecord


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field(min_length=1, repr=False)


class LoginResponse(BaseModel):
    csrf_token: str


class ManifestSubmission(BaseModel):
    """What the orchestrator sends: the manifest and this stack's params."""

    model_config = ConfigDict(extra="forbid")
    manifest: Manifest
    params: dict[str, Any] = Field(default_factory=dict)


class ManifestAccepted(BaseModel):
    manifest_id: int
    changes: Changes
    update_id: int | None = None


class PlanResponse(BaseModel):
    project: str
    services: list[ServicePlan]
    waves: list[list[str]]
    pending_inputs: list[PendingInput]
    upcoming_inputs: list[PendingInput]
    pending_removals: list[str]
    complete: bool


class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str = Field(repr=False)


class AnswerStatus(BaseModel):
    """Whether an input is answered; the value only for non-secret inputs."""

    id: str
    title: str
    type: str
    answered: bool
    secret: bool
    value: str | None = None
    updated_at: str | None = None


class AnswerAccepted(BaseModel):
    id: str
    answered: Literal[True] = True
    changed: bool
    update_id: int | None = None


class UpdateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="requested", max_length=200)


class UpdateList(BaseModel):
    updates: list[UpdateRecord]


class UpdateQueued(BaseModel):
    update_id: int


class RemovalConfirmed(BaseModel):
    service: str
    update_id: int | None = None


class SecretList(BaseModel):
    secrets: list[SecretInfo]


class RevealRequest(BaseModel):
    """The admin password, entered again: revealing a secret is worth a second check."""

    model_config = ConfigDict(extra="forbid")
    password: str = Field(min_length=1, repr=False)


class RevealedSecret(BaseModel):
    """The only response that carries a secret's value (sent with ``Cache-Control: no-store``)."""

    id: str
    #: Text, or the PEM parts of a key or certificate by name.
    value: str | dict[str, str] = Field(repr=False)


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    detail: list[ErrorItem] | str


class PreviewStepModel(BaseModel):
    """One object or resource the next update would change (kind/type and name only)."""

    operation: str
    type: str
    name: str


class PreviewResponse(BaseModel):
    """What the next update would change: counts by operation and each step; never a value."""

    stack: str
    dry_run: bool
    changes: dict[str, int]
    steps: list[PreviewStepModel]
    #: The services the next update would deploy.
    deploy: list[str]


class DestroyRequest(BaseModel):
    """Destroy the services' stack; ``confirm`` must be the stack's name."""

    model_config = ConfigDict(extra="forbid")
    confirm: str = Field(min_length=1, max_length=100,
                         description="the name of the manager's stack, as a confirmation")
    delete_volumes: bool = Field(
        default=False, description="also delete the volumes (claims), their data and the "
        "namespace; by default they are kept")


class DestroyResponse(BaseModel):
    stack: str
    changes: dict[str, int]
    volumes_kept: bool
    #: Queued updates that will not run (the next manifest deploys the stack again).
    cancelled_updates: list[int]


class IngressCa(BaseModel):
    """The certificate (public) of the CA that signs the stack's ingress certificates."""

    stack: str
    cert_pem: str

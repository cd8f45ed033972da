"""Per-user stacks through the Pulumi Automation API.

One mora project is one Pulumi project; each person (or each domain) deploying
it gets a stack with its own params and answers. By default the state lives in
Pulumi's local file backend under the mora home (``$MORA_HOME``, else
``$XDG_DATA_HOME/mora``), encrypted with a passphrase mora generates once and
keeps in a 0600 file, so nobody needs a Pulumi account; a ``backend_url`` (or
``"cloud"`` for the user's existing Pulumi Cloud login) works too.

The program runs inline (:func:`stacks.program.run`), so the manifest in memory is
what gets deployed; its config is written as ``mora:*`` stack config, answers
with ``--secret``. Engine events become :class:`ProgressEvent` for the CLI's
progress bar; Pulumi failures become :class:`~stacks.errors.DeploymentFailed`.
"""

from __future__ import annotations

import os
import secrets as _random
import shutil
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mora_dsl.manifest import Manifest

from .config import NAMESPACE, StackConfig, config_keys, from_pulumi_config, to_pulumi_config
from .errors import DeploymentFailed, KubeconfigMissing, PulumiNotInstalled, StackError
from .naming import k8s_name

if TYPE_CHECKING:
    from pulumi import automation as auto

CLOUD = "cloud"
PASSPHRASE_FILE = "pulumi-passphrase"
#: Where Kubernetes mounts a pod's service account token.
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


# --------------------------------------------------------------------------- environment checks


def mora_home() -> Path:
    """Where mora keeps its state: ``$MORA_HOME``, else ``$XDG_DATA_HOME/mora``."""
    if os.environ.get("MORA_HOME"):
        return Path(os.environ["MORA_HOME"])
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "mora"


def require_pulumi() -> str:
    """The path of the `pulumi` CLI; raises :class:`PulumiNotInstalled` when it is missing."""
    found = shutil.which("pulumi")
    if found is None:
        raise PulumiNotInstalled()
    return found


def in_cluster() -> bool:
    """Whether this process runs in a Kubernetes pod with a service account token.

    Then the Kubernetes provider uses the pod's service account (in-cluster config)
    and no kubeconfig is needed: this is how the manager runs the services' stack.
    """
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and SERVICE_ACCOUNT_TOKEN.is_file()


def kubeconfig_path() -> Path:
    """The kubeconfig the Kubernetes provider will use; raises when there is none."""
    env = os.environ.get("KUBECONFIG")
    candidates = [Path(p) for p in env.split(os.pathsep) if p] if env else []
    candidates.append(Path.home() / ".kube" / "config")
    for path in candidates:
        if path.is_file():
            return path
    raise KubeconfigMissing(
        "No kubeconfig found (looked at $KUBECONFIG and ~/.kube/config); point KUBECONFIG at "
        "your cluster's config, e.g. `export KUBECONFIG=/etc/rancher/k3s/k3s.yaml`."
    )


def passphrase_file(home: Path) -> Path:
    """The passphrase that encrypts the local state's secrets: generated once, kept 0600."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / PASSPHRASE_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(_random.token_urlsafe(32))
    if stat.S_IMODE(path.stat().st_mode) != 0o600:
        path.chmod(0o600)
    return path


# --------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class ProgressEvent:
    """One step of an operation, for a progress display.

    ``kind``: ``start`` (a resource is being worked on), ``done`` (it finished),
    ``failed``, ``message`` (a diagnostic line), ``summary`` (``changes`` holds the
    counts by operation), ``link`` (the Pulumi Cloud console URL).
    """

    kind: Literal["start", "done", "failed", "message", "summary", "link"]
    operation: str = ""
    resource_type: str = ""
    name: str = ""
    message: str = ""
    changes: dict[str, int] | None = None


OnProgress = Callable[[ProgressEvent], None]


def _op(op: Any) -> str:
    return str(getattr(op, "value", op))


def _name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def progress_event(event: Any) -> ProgressEvent | None:
    """Translate one Pulumi engine event (``auto.EngineEvent``) into a :class:`ProgressEvent`."""
    if event.resource_pre_event is not None:
        meta = event.resource_pre_event.metadata
        if meta.type.startswith("pulumi:pulumi:Stack"):
            return None
        return ProgressEvent("start", _op(meta.op), meta.type, _name_of(meta.urn))
    if event.res_outputs_event is not None:
        meta = event.res_outputs_event.metadata
        return ProgressEvent("done", _op(meta.op), meta.type, _name_of(meta.urn))
    if event.res_op_failed_event is not None:
        meta = event.res_op_failed_event.metadata
        return ProgressEvent("failed", _op(meta.op), meta.type, _name_of(meta.urn))
    if event.diagnostic_event is not None:
        diag = event.diagnostic_event
        if diag.severity in ("error", "warning", "info") and diag.message.strip():
            return ProgressEvent("message", diag.severity, name=_name_of(diag.urn or ""),
                                 message=diag.message.strip())
        return None
    if event.summary_event is not None:
        changes = {str(k): int(v) for k, v in (event.summary_event.resource_changes or {}).items()}
        return ProgressEvent("summary", changes=changes)
    return None


@dataclass(frozen=True)
class Result:
    """What an operation did: change counts, stack outputs (no secrets), console link."""

    changes: dict[str, int]
    outputs: dict[str, Any]
    console_url: str | None = None


# --------------------------------------------------------------------------- the workspace


class Workspace:
    """The stacks of one mora project, and the operations on them.

    ``pulumi_command`` is for tests (a recording stand-in); normally the CLI on
    PATH is used, and its absence raises :class:`PulumiNotInstalled` before anything
    else happens.
    """

    def __init__(
        self,
        manifest: Manifest,
        *,
        home: Path | None = None,
        backend_url: str | None = None,
        pulumi_command: auto.PulumiCommand | None = None,
        kubeconfig: Path | None = None,
    ) -> None:
        self.manifest = manifest
        self._setup(k8s_name("mora", manifest.project.name), k8s_name(manifest.project.name),
                    home=home, backend_url=backend_url, pulumi_command=pulumi_command,
                    kubeconfig=kubeconfig)

    def _setup(
        self,
        project_name: str,
        folder: str,
        *,
        home: Path | None,
        backend_url: str | None,
        pulumi_command: auto.PulumiCommand | None,
        kubeconfig: Path | None,
    ) -> None:
        """The Pulumi project ``project_name``, its work dir ``projects/<folder>`` in the home."""
        self.home = home or mora_home()
        self.project_name = project_name
        self.work_dir = self.home / "projects" / folder
        self.backend_url = backend_url or f"file://{self.home / 'state'}"
        self.kubeconfig = kubeconfig
        self._command = pulumi_command

    # ------------------------------------------------------------------ plumbing

    def _pulumi_command(self) -> auto.PulumiCommand:
        if self._command is None:
            require_pulumi()
            from pulumi import automation as auto

            try:
                self._command = auto.PulumiCommand()
            except FileNotFoundError:
                raise PulumiNotInstalled() from None
        return self._command

    def _env(self) -> dict[str, str]:
        env = {}
        if self.backend_url != CLOUD:
            env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(passphrase_file(self.home))
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def _program(self) -> Callable[[], None]:
        """The inline program this workspace runs (another one for the manager's stack)."""
        from .program import run

        manifest = self.manifest
        return lambda: run(manifest)

    def _description(self) -> str | None:
        return self.manifest.project.description or None

    def _workspace(self) -> auto.LocalWorkspace:
        from pulumi import automation as auto

        self.work_dir.mkdir(parents=True, exist_ok=True)
        local = self.backend_url != CLOUD
        settings = auto.ProjectSettings(
            name=self.project_name,
            runtime="python",
            description=self._description(),
            backend=auto.ProjectBackend(url=self.backend_url) if local else None,
        )
        return auto.LocalWorkspace(
            work_dir=str(self.work_dir),
            program=self._program(),
            env_vars=self._env(),
            secrets_provider="passphrase" if local else None,
            project_settings=settings,
            pulumi_command=self._pulumi_command(),
        )

    def _stack(self, name: str, *, create: bool) -> auto.Stack:
        from pulumi import automation as auto

        workspace = self._workspace()
        try:
            if create:
                return auto.Stack.create_or_select(name, workspace)
            return auto.Stack.select(name, workspace)
        except auto.StackNotFoundError:
            raise StackError(f"there is no stack {name!r}; create it with `mora init`") from None
        except auto.CommandError as err:
            raise DeploymentFailed(_first_error(err)) from None

    # ------------------------------------------------------------------ stacks and config

    def stack_names(self) -> list[str]:
        """The stacks of this project (``mora stacks``)."""
        return sorted(s.name for s in self._workspace().list_stacks())

    def init(self, stack: str, config: StackConfig) -> None:
        """Create (or select) ``stack`` and write ``config`` into it (``mora init``)."""
        self.write_config(stack, config, create=True)

    def write_config(self, stack: str, config: StackConfig, *, create: bool = False) -> None:
        """Replace the stack's ``mora:*`` config by ``config``; answers are set as secrets.

        For a caller that owns every part of the config (the manager's runner). A
        caller that only knows params and settings uses :meth:`update_config`.
        """
        s = self._stack(stack, create=create)
        self._write_config(s, config, s.get_all_config())

    def update_config(
        self, stack: str, config: StackConfig, *, create: bool = False
    ) -> StackConfig:
        """Write ``config``'s params and settings, keeping what only the stack holds.

        The wizard's answers, the deploy set and the rotation stamps live in the
        Pulumi stack, not in mora's record of it (`mora init`, `mora up --local`) nor
        in a manager's params: writing a config built from those must not drop them.
        So the stack's answers are kept (``config``'s own answers win), its deploy set
        is kept unless ``config`` names one, and its rotation stamps are kept (a
        dropped stamp would change a keeper and regenerate the secret). Micromanager
        tokens are kept like answers (only the manager issues them); the manager's
        URL is a setting like any other, so a config without one has no sidecars.
        Answers and tokens are written back with ``--secret``. Returns the config as
        written.
        """
        s = self._stack(stack, create=create)
        values = s.get_all_config()
        current = self._config_from(values)
        merged = config.model_copy(update={
            "answers": {**current.answers, **config.answers},
            "micromanager_tokens": {**current.micromanager_tokens, **config.micromanager_tokens},
            "deploy": current.deploy if config.deploy is None else config.deploy,
            "rotate": {**current.rotate, **config.rotate},
        })
        self._write_config(s, merged, values)
        return merged

    def _write_config(
        self, s: auto.Stack, config: StackConfig, current: Mapping[str, auto.ConfigValue]
    ) -> None:
        from pulumi import automation as auto

        wanted = to_pulumi_config(config)
        stale = [f"{NAMESPACE}:{k}" for k in config_keys(self.manifest) if k not in wanted]
        stale = [k for k in stale if k in current]
        if stale:
            s.remove_all_config(stale)
        s.set_all_config(
            {f"{NAMESPACE}:{k}": auto.ConfigValue(value=v, secret=secret)
             for k, (v, secret) in wanted.items()}
        )

    def _config_from(self, values: Mapping[str, auto.ConfigValue]) -> StackConfig:
        prefix = NAMESPACE + ":"
        return from_pulumi_config(
            self.manifest,
            {k[len(prefix):]: v.value for k, v in values.items() if k.startswith(prefix)},
        )

    def read_config(self, stack: str) -> StackConfig:
        """The stack's config as a :class:`StackConfig` (answers included, as SecretStr)."""
        return self._config_from(self._stack(stack, create=False).get_all_config())

    # ------------------------------------------------------------------ operations

    def _run(
        self, stack: str, operation: str, on_progress: OnProgress | None, **kwargs: Any
    ) -> Result:
        from pulumi import automation as auto

        if self.kubeconfig is None and not in_cluster():
            self.kubeconfig = kubeconfig_path()
        s = self._stack(stack, create=False)
        changes: dict[str, int] = {}

        def on_event(event: auto.EngineEvent) -> None:
            translated = progress_event(event)
            if translated is None:
                return
            if translated.kind == "summary" and translated.changes:
                changes.update(translated.changes)
            if on_progress is not None:
                on_progress(translated)

        try:
            result = getattr(s, operation)(on_event=on_event, color="never", **kwargs)
        except auto.CommandError as err:
            raise DeploymentFailed(_first_error(err)) from None
        summary = getattr(result, "summary", None)
        if summary is not None and summary.resource_changes:
            changes.update({str(k): int(v) for k, v in summary.resource_changes.items()})
        elif getattr(result, "change_summary", None):
            changes.update({str(k): int(v) for k, v in result.change_summary.items()})
        url = _console_url(result.stdout or "")
        if url and on_progress is not None:
            on_progress(ProgressEvent("link", message=url))
        outputs = self.outputs(stack) if operation != "preview" else {}
        return Result(changes, outputs, url)

    def preview(self, stack: str, on_progress: OnProgress | None = None) -> Result:
        return self._run(stack, "preview", on_progress)

    def up(self, stack: str, on_progress: OnProgress | None = None) -> Result:
        return self._run(stack, "up", on_progress)

    def refresh(self, stack: str, on_progress: OnProgress | None = None) -> Result:
        return self._run(stack, "refresh", on_progress)

    def destroy(
        self, stack: str, on_progress: OnProgress | None = None, *, delete_volumes: bool = False
    ) -> Result:
        """Remove the stack's resources. Claims and the namespace stay unless ``delete_volumes``.

        Without it, protected claims are skipped (``--exclude-protected``) and the
        retained namespace stays. With it, the stack is first updated with
        ``release_volumes`` so the protection is lifted, then destroyed.
        """
        if delete_volumes:
            config = self.read_config(stack)
            self.write_config(stack, config.model_copy(update={"release_volumes": True}))
            self._run(stack, "up", on_progress)
            return self._run(stack, "destroy", on_progress)
        return self._run(stack, "destroy", on_progress, exclude_protected=True)

    def outputs(self, stack: str) -> dict[str, Any]:
        """The stack outputs (URLs, namespace, deployed services), without secret ones."""
        values = self._stack(stack, create=False).outputs()
        return {k: v.value for k, v in values.items() if not v.secret}

    def reveal_secret(self, stack: str, secret_id: str) -> str:
        """One generated secret's value (``mora secrets show``; the CLI confirms first)."""
        values = self._stack(stack, create=False).outputs()
        generated = values.get("secrets")
        if generated is None or secret_id not in (generated.value or {}):
            known = sorted((generated.value or {}) if generated else [])
            raise StackError(
                f"stack {stack!r} has no generated secret {secret_id!r}"
                + (f"; it has {', '.join(known)}" if known else "; run `mora up` first")
            )
        return str(generated.value[secret_id])


def _first_error(err: Exception) -> str:
    """The engine's error lines, without the CLI's stack trace noise."""
    text = getattr(err, "stderr", "") or str(err)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln.lower()]
    return "; ".join(errors or lines[-3:]) or "the Pulumi engine failed"


def _console_url(stdout: str) -> str | None:
    for line in stdout.splitlines():
        if "app.pulumi.com" in line or "View in Browser" in line or "View Live" in line:
            for word in line.split():
                if word.startswith("https://"):
                    return word
    return None

"""The pod template of a service: container, environment, mounts, GPU, probes, user.

Secrets never appear in the pod spec: an environment value that holds one is a
``secretKeyRef`` into the service's env Secret, and a command-line argument that
holds one becomes an env var of that Secret which Kubernetes substitutes through
``$(VAR)``. Literal text gets its ``$(`` escaped so Kubernetes leaves it alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mora_dsl.manifest import Health, Service

from .context import Context
from .naming import k8s_name, key_name
from .resolve import is_secret
from .sidecar import Sidecar, sidecar

_DOLLAR = re.compile(r"\$(?=[($])")


def escape_dollars(text: str) -> str:
    """Keep ``text`` literal under Kubernetes' ``$(VAR)`` expansion (``$(`` → ``$$(``)."""
    return _DOLLAR.sub("$$", text)


def _literal(value: Any) -> Any:
    if isinstance(value, pulumi.Output):
        return value.apply(escape_dollars)
    return escape_dollars(value)


def port_name(name: str) -> str:
    """A valid container port name (IANA_SVC_NAME: at most 15 characters)."""
    return k8s_name(name)[:15].rstrip("-")


@dataclass
class PodParts:
    """What building the pod found that must live in other objects."""

    env_secret: dict[str, Any] = field(default_factory=dict)  # key → secret Output
    config_files: dict[str, Any] = field(default_factory=dict)  # key → text
    secret_files: dict[str, Any] = field(default_factory=dict)  # key → secret Output
    has_claims: bool = False
    #: The micromanager sidecar in the pod, when the service has one (its Secret, its port).
    sidecar: Sidecar | None = None


CONFIG_FILES_VOLUME = "mora-files"
SECRET_FILES_VOLUME = "mora-secret-files"


def env_secret_name(service: Service) -> str:
    return k8s_name(service.name, "env")


def files_name(service: Service) -> str:
    return k8s_name(service.name, "files")


def secret_files_name(service: Service) -> str:
    return k8s_name(service.name, "secret-files")


def secret_env(name: str, secret: str, key: str) -> k8s.core.v1.EnvVarArgs:
    """The env var ``name`` read from key ``key`` of the Secret ``secret`` (never the value)."""
    return k8s.core.v1.EnvVarArgs(
        name=name,
        value_from=k8s.core.v1.EnvVarSourceArgs(
            secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret, key=key)
        ),
    )


def _env(ctx: Context, service: Service, parts: PodParts) -> list[k8s.core.v1.EnvVarArgs]:
    env = []
    for name, value in service.environment.items():
        if is_secret(value):
            parts.env_secret[name] = ctx.resolver.text(value)
            env.append(secret_env(name, env_secret_name(service), name))
        else:
            env.append(k8s.core.v1.EnvVarArgs(name=name, value=_literal(ctx.resolver.text(value))))
    return env


def _command_line(
    ctx: Context, service: Service, values: list[Any] | None, what: str, parts: PodParts,
    env: list[k8s.core.v1.EnvVarArgs],
) -> list[Any] | None:
    if values is None:
        return None
    out = []
    for i, value in enumerate(values):
        if is_secret(value):
            var = f"MORA_{what}_{i}"
            parts.env_secret[var] = ctx.resolver.text(value)
            env.append(secret_env(var, env_secret_name(service), var))
            out.append(f"$({var})")
        else:
            out.append(_literal(ctx.resolver.text(value)))
    return out


def _probe(service: Service, health: Health, failure_threshold: int) -> k8s.core.v1.ProbeArgs | None:
    port = health.port or (service.ports[0].name if service.ports else None)
    common: dict[str, Any] = {
        "initial_delay_seconds": health.initial_delay,
        "period_seconds": health.period,
        "failure_threshold": failure_threshold,
    }
    if health.command:
        return k8s.core.v1.ProbeArgs(exec_=k8s.core.v1.ExecActionArgs(command=health.command), **common)
    if port is None:
        return None
    if health.http:
        return k8s.core.v1.ProbeArgs(
            http_get=k8s.core.v1.HTTPGetActionArgs(path=health.http, port=port_name(port)), **common
        )
    if health.tcp:
        return k8s.core.v1.ProbeArgs(
            tcp_socket=k8s.core.v1.TCPSocketActionArgs(port=port_name(port)), **common
        )
    return None


def _resources(ctx: Context, service: Service) -> k8s.core.v1.ResourceRequirementsArgs | None:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    r = service.resources
    if r is not None:
        if r.cpu:
            requests["cpu"] = r.cpu
        if r.memory:
            requests["memory"] = r.memory
        if r.cpu_limit:
            limits["cpu"] = r.cpu_limit
        if r.memory_limit:
            limits["memory"] = r.memory_limit
    if service.gpu == "intel":
        limits["gpu.intel.com/i915"] = "1"
    elif service.gpu == "nvidia":
        limits["nvidia.com/gpu"] = "1"
    if not requests and not limits:
        return None
    return k8s.core.v1.ResourceRequirementsArgs(requests=requests or None, limits=limits or None)


def _mounts(
    ctx: Context, service: Service, parts: PodParts
) -> tuple[list[k8s.core.v1.VolumeMountArgs], list[k8s.core.v1.VolumeArgs]]:
    mounts: list[k8s.core.v1.VolumeMountArgs] = []
    volumes: dict[str, k8s.core.v1.VolumeArgs] = {}
    for mount in service.mounts:
        volume = ctx.manifest.volume(mount.volume)
        vname = k8s_name(volume.id)
        if vname not in volumes:
            if volume.kind == "claim":
                parts.has_claims = True
                volumes[vname] = k8s.core.v1.VolumeArgs(
                    name=vname,
                    persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
                        claim_name=ctx.claims.get(volume.id, k8s_name(volume.id))
                    ),
                )
            else:
                volumes[vname] = k8s.core.v1.VolumeArgs(
                    name=vname,
                    host_path=k8s.core.v1.HostPathVolumeSourceArgs(
                        path=ctx.resolver.text(volume.host), type="DirectoryOrCreate"
                    ),
                )
        mounts.append(
            k8s.core.v1.VolumeMountArgs(
                name=vname, mount_path=mount.path, read_only=mount.read_only or None,
                sub_path=mount.sub_path,
            )
        )
    for i, device in enumerate(service.devices):
        vname = f"device-{i}"
        volumes[vname] = k8s.core.v1.VolumeArgs(
            name=vname, host_path=k8s.core.v1.HostPathVolumeSourceArgs(path=device)
        )
        mounts.append(k8s.core.v1.VolumeMountArgs(name=vname, mount_path=device))
    for file in service.files:
        key = key_name(file.path)
        if is_secret(file.content):
            parts.secret_files[key] = ctx.resolver.text(file.content)
            vname = SECRET_FILES_VOLUME
        else:
            parts.config_files[key] = ctx.resolver.text(file.content)
            vname = CONFIG_FILES_VOLUME
        mounts.append(
            k8s.core.v1.VolumeMountArgs(name=vname, mount_path=file.path, sub_path=key, read_only=True)
        )
    modes = {key_name(f.path): f.mode for f in service.files}

    def items(files: dict[str, Any]) -> list[k8s.core.v1.KeyToPathArgs]:
        return [k8s.core.v1.KeyToPathArgs(key=k, path=k, mode=modes[k]) for k in files]

    if parts.config_files:
        volumes[CONFIG_FILES_VOLUME] = k8s.core.v1.VolumeArgs(
            name=CONFIG_FILES_VOLUME,
            config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                name=files_name(service), items=items(parts.config_files)
            ),
        )
    if parts.secret_files:
        volumes[SECRET_FILES_VOLUME] = k8s.core.v1.VolumeArgs(
            name=SECRET_FILES_VOLUME,
            secret=k8s.core.v1.SecretVolumeSourceArgs(
                secret_name=secret_files_name(service), items=items(parts.secret_files)
            ),
        )
    return mounts, list(volumes.values())


def pod_spec(ctx: Context, service: Service) -> tuple[k8s.core.v1.PodSpecArgs, PodParts]:
    """The pod spec of ``service`` and the data its Secrets and ConfigMap must hold."""
    parts = PodParts()
    env = _env(ctx, service, parts)
    command = _command_line(ctx, service, service.command, "COMMAND", parts, env)
    args = _command_line(ctx, service, service.args, "ARG", parts, env)
    mounts, volumes = _mounts(ctx, service, parts)
    health = service.health
    container = k8s.core.v1.ContainerArgs(
        name=k8s_name(service.name),
        image=ctx.resolver.text(service.image),
        command=command,
        args=args,
        env=env or None,
        ports=[
            k8s.core.v1.ContainerPortArgs(
                name=port_name(p.name), container_port=p.port, protocol=p.protocol
            )
            for p in service.ports
        ]
        or None,
        volume_mounts=mounts or None,
        resources=_resources(ctx, service),
        readiness_probe=_probe(service, health, 3) if health else None,
        liveness_probe=_probe(service, health, 6) if health else None,
    )
    security: dict[str, Any] = {}
    if service.user is not None:
        security["run_as_user"] = service.user
    if service.group is not None:
        security["run_as_group"] = service.group
        security["fs_group"] = service.group
    if service.gpu == "intel":
        security["supplemental_groups"] = [ctx.config.render_group]
    parts.sidecar = sidecar(ctx, service)
    containers = [container] if parts.sidecar is None else [container, parts.sidecar.container]
    spec = k8s.core.v1.PodSpecArgs(
        containers=containers,
        volumes=volumes or None,
        security_context=k8s.core.v1.PodSecurityContextArgs(**security) if security else None,
        runtime_class_name="nvidia" if service.gpu == "nvidia" else None,
        # Service links inject <NAME>_PORT=tcp://… variables that collide with the
        # apps' own settings (lldap reads LLDAP_* from its environment).
        enable_service_links=False,
    )
    return spec, parts

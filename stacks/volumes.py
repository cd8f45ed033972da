"""PersistentVolumeClaims: data that must outlive every update.

A claim is protected (an update that would delete it fails) and retained on
delete (a `destroy` leaves it in the cluster), unless the stack sets
``release_volumes`` (then both are lifted: `destroy --delete-volumes`), or lists
the claim's service in ``released`` (then it is unprotected but still retained:
the service is being removed, its data stays in the cluster; see
:func:`claim_protection`). It carries ``pulumi.com/skipAwait`` because claims of a
``WaitForFirstConsumer`` storage class (k3s local-path, kind) only bind once a pod
uses them: waiting for the claim before creating the pod would never finish.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mora_dsl.manifest import Service, Volume

from .config import StackConfig
from .context import Context
from .naming import k8s_name, labels


def claim_protection(config: StackConfig, service: str | None) -> tuple[bool, bool]:
    """``(protect, retain_on_delete)`` for a claim of ``service`` (``None``: a shared claim).

    * ``release_volumes``: neither, so `destroy --delete-volumes` deletes the data;
    * the service is ``released`` (being removed): not protected, so the update that
      drops it from the program can drop the claim from the stack, but retained, so
      the claim and its data stay in the cluster;
    * otherwise both: no update can delete a claim by accident.
    """
    if config.release_volumes:
        return False, False
    if service is not None and service in config.released:
        return False, True
    return True, True


def volume_options(
    ctx: Context, parent: pulumi.Resource, service: str | None = None
) -> pulumi.ResourceOptions:
    protect, retain = claim_protection(ctx.config, service)
    return pulumi.ResourceOptions(
        parent=parent,
        protect=protect,
        retain_on_delete=retain,
        depends_on=[ctx.namespace_resource] if ctx.namespace_resource else None,
    )


def claim(
    ctx: Context, volume: Volume, service: Service | None, parent: pulumi.Resource
) -> k8s.core.v1.PersistentVolumeClaim:
    """The claim for ``volume`` (kind ``claim``); records its name in ``ctx.claims``."""
    name = k8s_name(volume.id)
    storage_class = volume.storage_class or ctx.config.storage_class
    pvc = k8s.core.v1.PersistentVolumeClaim(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=name,
            namespace=ctx.namespace,
            labels=labels(ctx.manifest, service),
            annotations={"pulumi.com/skipAwait": "true"},
        ),
        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=[volume.access_mode],
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                requests={"storage": volume.size or "1Gi"}
            ),
            storage_class_name=storage_class,
        ),
        opts=volume_options(ctx, parent, service.name if service else None),
    )
    ctx.claims[volume.id] = name
    return pvc

"""The everyday tools: lightkube against an HTTP double of the API server, and the dry runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from k8s_double import STRATEGIC, KubeDouble
from manager_helpers import build_manifest, manifest_with_secret

from manager_app.cluster import (
    RESTARTED_AT,
    ClusterError,
    DryRunActions,
    DryRunSecrets,
    KubernetesActions,
    NotDeployed,
    NotGenerated,
    NotStarted,
    StackSecrets,
    Target,
    secret_users,
)
from manager_app.deployers import DryRunDeployer
from mora_dsl.manifest import Manifest
from stacks.errors import StackError

LABELS = {"app.kubernetes.io/name": "app", "app.kubernetes.io/instance": "lab"}


@pytest.fixture(scope="module")
def double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeDouble]:
    with KubeDouble(tmp_path_factory.mktemp("k8s")) as running_double:
        yield running_double


@pytest.fixture
def kube(double: KubeDouble) -> Iterator[KubernetesActions]:
    double.state.__init__()  # type: ignore[misc] # a fresh cluster per test
    actions = KubernetesActions.from_kubeconfig(double.kubeconfig, timeout=5)
    yield actions
    actions.close()


def target() -> Target:
    return Target.of(build_manifest({"db": [], "app": ["db"]}), "app")


def test_target_uses_the_stack_names() -> None:
    t = target()
    assert (t.namespace, t.deployment) == ("lab", "app")
    assert t.selector == LABELS
    with pytest.raises(KeyError):
        Target.of(build_manifest({"db": []}), "nope")


# --------------------------------------------------------------------------- Kubernetes API


def test_restart_patches_the_pod_template_like_kubectl(
    kube: KubernetesActions, double: KubeDouble
) -> None:
    double.state.add_deployment("lab", "app", LABELS)
    result = kube.restart(target())
    seen = double.state.requests[-1]
    assert (seen.method, seen.path) == ("PATCH", "/apis/apps/v1/namespaces/lab/deployments/app")
    assert seen.content_type.startswith(STRATEGIC)
    assert seen.body == {"spec": {"template": {"metadata": {"annotations": {
        RESTARTED_AT: result.restarted_at}}}}}
    assert seen.query.get("fieldManager") == "mora-manager"
    stored = double.state.deployments[("lab", "app")]
    assert stored["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == result.restarted_at
    assert result.restarted_at.endswith("Z") and "T" in result.restarted_at
    assert kube.status(target()).restarted_at == result.restarted_at


def test_logs_come_from_the_newest_pod_with_tail_lines(
    kube: KubernetesActions, double: KubeDouble
) -> None:
    double.state.add_pod("lab", "app-old", LABELS, "2026-01-01T10:00:00Z", ["old 1", "old 2"])
    double.state.add_pod("lab", "app-new", LABELS, "2026-01-02T10:00:00Z",
                         [f"line {i}" for i in range(10)])
    double.state.add_pod("lab", "db-x", {**LABELS, "app.kubernetes.io/name": "db"},
                         "2026-01-03T10:00:00Z", ["db line"])
    double.state.add_pod("other", "app-elsewhere", LABELS, "2026-01-04T10:00:00Z", ["no"])
    logs = kube.logs(target(), tail_lines=3)
    assert (logs.pod, logs.lines) == ("app-new", ["line 7", "line 8", "line 9"])
    listing, read = double.state.requests[-2:]
    assert listing.path == "/api/v1/namespaces/lab/pods"
    assert _selector(listing.query["labelSelector"]) == LABELS
    assert read.path == "/api/v1/namespaces/lab/pods/app-new/log"
    assert read.query["tailLines"] == "3"
    # The service's container by name: a micromanaged pod has the sidecar too.
    assert read.query["container"] == "app"


def _selector(text: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in text.split(","))


def test_status_reads_ready_replicas(kube: KubernetesActions, double: KubeDouble) -> None:
    double.state.add_deployment("lab", "app", LABELS, replicas=2, ready=1)
    status = kube.status(target())
    assert (status.replicas, status.ready_replicas, status.restarted_at) == (2, 1, None)
    assert double.state.requests[-1].path == "/apis/apps/v1/namespaces/lab/deployments/app"


def test_missing_deployment_or_pod_is_not_deployed(
    kube: KubernetesActions, double: KubeDouble
) -> None:
    with pytest.raises(NotDeployed, match="no Deployment"):
        kube.restart(target())
    with pytest.raises(NotDeployed):
        kube.status(target())
    with pytest.raises(NotDeployed, match="no pod"):
        kube.logs(target())


def test_a_waiting_container_has_no_logs_yet(kube: KubernetesActions, double: KubeDouble) -> None:
    double.state.add_pod("lab", "app-1", LABELS, "2026-01-01T10:00:00Z", waiting=True)
    with pytest.raises(NotStarted, match="waiting to start"):
        kube.logs(target())


def test_api_failures_become_cluster_errors(kube: KubernetesActions, double: KubeDouble) -> None:
    double.state.add_deployment("lab", "app", LABELS)
    double.state.fail_next = [500, 403]
    with pytest.raises(ClusterError, match="500"):
        kube.restart(target())
    with pytest.raises(ClusterError, match="403"):
        kube.status(target())


def test_unreachable_api_server_is_a_cluster_error(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u"}}],
    }))
    actions = KubernetesActions.from_kubeconfig(config, timeout=2)
    with pytest.raises(ClusterError, match="cannot reach"):
        actions.status(target())


def test_no_kubeconfig_is_a_cluster_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ClusterError, match="no Kubernetes configuration"):
        KubernetesActions().status(target())


# --------------------------------------------------------------------------- dry run


def _deployed(folder: Path) -> DryRunDeployer:
    """A dry-run folder as an update leaves it: the app's Deployment, one event."""
    deployer = DryRunDeployer(folder)
    folder.mkdir(parents=True)
    (folder / DryRunDeployer.OBJECTS_FILE).write_text(json.dumps([
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "app", "namespace": "lab"}, "spec": {"replicas": 1}},
    ]))
    deployer.record_event("app", "update applied (dry run): image example/app:1")
    return deployer


def test_dry_run_restart_is_recorded_and_logged(tmp_path: Path) -> None:
    folder = tmp_path / "dry-run"
    _deployed(folder)
    actions = DryRunActions(folder)
    assert actions.status(target()).restarted_at is None
    result = actions.restart(target())
    status = actions.status(target())
    assert (status.replicas, status.ready_replicas, status.restarted_at) == (
        1, 1, result.restarted_at)
    lines = actions.logs(target()).lines
    assert "update applied" in lines[0] and "restarted by the admin" in lines[-1]
    assert actions.logs(target(), tail_lines=1).lines == lines[-1:]
    assert DryRunActions(folder).logs(Target.of(build_manifest({"db": []}), "db")).lines == []


def test_dry_run_service_not_deployed(tmp_path: Path) -> None:
    actions = DryRunActions(tmp_path / "dry-run")
    with pytest.raises(NotDeployed):
        actions.restart(target())
    with pytest.raises(NotDeployed):
        actions.status(target())


def test_dry_run_secrets_reveal_and_rotate(tmp_path: Path) -> None:
    manifest = manifest_with_secret()
    secret = manifest.secret("app.db_password")
    folder = tmp_path / "dry-run"
    secrets = DryRunSecrets(folder)
    with pytest.raises(NotGenerated):
        secrets.reveal(manifest, secret)
    DryRunDeployer(folder)._ensure_secrets(manifest)
    before = secrets.reveal(manifest, secret)
    assert isinstance(before, str) and len(before) == 24
    secrets.rotate(manifest, secret)
    after = secrets.reveal(manifest, secret)
    assert isinstance(after, str) and len(after) == 24 and after != before
    events = DryRunDeployer(folder).events("app")
    assert events[-1]["message"] == "secret app.db_password rotated (dry run)"
    log_text = (folder / DryRunDeployer.EVENTS_FILE).read_text()
    assert before not in log_text and after not in log_text
    assert (folder / DryRunDeployer.SECRETS_FILE).stat().st_mode & 0o077 == 0


def test_secret_users_follow_references() -> None:
    assert secret_users(manifest_with_secret(), "app.db_password") == ["app"]


class _Workspace:
    """Stands in for :class:`stacks.automation.Workspace` (no Pulumi CLI here)."""

    calls: list[tuple[str, str, Any]] = []  # noqa: RUF012 - a test recorder

    def __init__(self, manifest: Manifest, home: Path | None = None) -> None:
        self.home = home

    def reveal_secret(self, stack: str, secret_id: str) -> str:
        self.calls.append((stack, secret_id, self.home))
        if secret_id == "app.db_password":
            return "from-the-stack-outputs"
        raise StackError(f"stack {stack!r} has no generated secret {secret_id!r}")


def test_stack_secrets_come_from_the_workspace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import stacks.automation

    monkeypatch.setattr(stacks.automation, "Workspace", _Workspace)
    manifest = manifest_with_secret()
    secrets = StackSecrets("prod", home=tmp_path / "pulumi")
    assert secrets.reveal(manifest, manifest.secret("app.db_password")) == "from-the-stack-outputs"
    assert _Workspace.calls[-1] == ("prod", "app.db_password", tmp_path / "pulumi")
    other = manifest.secret("app.db_password").model_copy(update={"id": "app.other"})
    with pytest.raises(NotGenerated, match="no generated secret"):
        secrets.reveal(manifest, other)

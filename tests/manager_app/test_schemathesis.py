"""schemathesis over the manager's OpenAPI: no 5xx, and every response as documented.

Driven through schemathesis's Python API rather than its pytest plugin: the
plugin is disabled for the whole suite (``-p no:schemathesis`` in pytest's
addopts) because loading it slows every pytest start. The app runs in-process
(ASGI, its lifespan started by schemathesis, so the update runner really runs
what the fuzzed calls trigger), with the bearer token and the media-server
manifest received. The deployer is the dry-run one minus the offline render
(which would spend seconds per update on Pulumi's mocks): it still generates the
secrets, keeps a Deployment per deployed service and records events, so
restart, logs, status, reveal and rotate have real dry-run state to act on.

Checks: no 5xx, status code / content type / headers / body as documented, and
``ignored_auth`` (the same call without the token must be refused). Not
``positive_data_acceptance``: the OpenAPI schema cannot say that a manifest's ids
are unique or that its graph names known services, so a schema-valid manifest
may rightly be refused with 422.

Examples are bounded per operation (``MORA_SCHEMATHESIS_EXAMPLES``, default 25)
and derandomized, so a run is repeatable and stays well under a minute.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from manager_helpers import BEARER, MEDIA_PARAMS, PASSWORD, make_settings, media_server
from schemathesis.core import NOT_SET

from manager_app.app import create_app
from manager_app.deployers import DeployResult, DryRunDeployer
from mora_dsl.manifest import Manifest
from stacks.config import StackConfig
from stacks.naming import k8s_name

EXAMPLES = int(os.environ.get("MORA_SCHEMATHESIS_EXAMPLES", "25"))


class QuickDryRun(DryRunDeployer):
    """The dry-run deployer without the render: secrets, one Deployment per service, events."""

    def up(self, manifest: Manifest, config: StackConfig) -> DeployResult:
        import json

        from manager_app.crypto import write_private

        self._ensure_secrets(manifest)
        deployed = sorted(config.deploy or [])
        objects = [
            {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 1},
             "metadata": {"name": k8s_name(name), "namespace": manifest.project.namespace}}
            for name in deployed
        ]
        write_private(self.folder / self.OBJECTS_FILE, json.dumps(objects).encode())
        for name in deployed:
            self.record_event(name, "update applied (quick dry run)")
        return DeployResult(deployed=deployed)


def _known_cases(operation: Any, manifest: Manifest) -> list[Any]:
    """Calls with real names, which random strings never hit: every service, secret, input."""
    path = operation.path
    if path.startswith("/api/v1/services/{name}/"):
        return [operation.Case(path_parameters={"name": s.name}) for s in manifest.services]
    if path == "/api/v1/secrets/{secret_id}/reveal":
        return [operation.Case(path_parameters={"secret_id": s.id}, body={"password": pw})
                for s in manifest.secrets for pw in (PASSWORD, "wrong")]
    if path.startswith("/api/v1/secrets/{secret_id}/"):
        return [operation.Case(path_parameters={"secret_id": s.id}) for s in manifest.secrets]
    if path == "/api/v1/answers/{input_id}":
        body = {"value": "x"} if operation.method.upper() == "PUT" else NOT_SET
        return [operation.Case(path_parameters={"input_id": i.id}, body=body)
                for i in manifest.inputs]
    return []


def _last(label: str) -> tuple[bool, str]:
    """Fuzz order: a random manifest replaces the real one and random logins end the session
    budget, so those two go last and every other operation sees the media server."""
    return ("/manifests" in label or "/login" in label or "/logout" in label, label)


def test_no_server_errors_and_responses_match_the_schema(tmp_path: Path) -> None:
    from schemathesis.checks import not_a_server_error
    from schemathesis.python.asgi import shutdown_lifespans
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        ignored_auth,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_headers_conformance, response_schema_conformance, ignored_auth]
    # A high login limit: otherwise random passwords soon make every reveal a 429.
    settings = make_settings(tmp_path, login_attempts_per_minute=100_000)
    app = create_app(settings, deployer=QuickDryRun(settings.data_dir / "dry-run"))
    manifest = media_server()
    app.state.manager.receive_manifest(manifest, MEDIA_PARAMS)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = sorted((r.ok() for r in schema.get_all_operations()), key=lambda o: _last(o.label))

    failures: dict[str, str] = {}
    statuses: Counter[tuple[str, int]] = Counter()
    try:
        for operation in operations:

            @hypothesis_settings(
                max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
            )
            @given(case=operation.as_strategy())
            def call(case: Any) -> None:
                response = case.call_and_validate(headers=BEARER, checks=checks)
                statuses[(case.operation.label, response.status_code)] += 1

            try:
                call()
                for case in _known_cases(operation, manifest):
                    call.hypothesis.inner_test(case)  # type: ignore[attr-defined]
            except (Exception, BaseExceptionGroup) as err:  # report every operation's failures
                failures[operation.label] = f"{type(err).__name__}: {err}"[:3000]
    finally:
        shutdown_lifespans()  # stops the update runner schemathesis started with the app
        app.state.store.close()

    assert len(operations) >= 15, [o.label for o in operations]
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
    # The known names reached the tools' success paths, not only their 404s.
    for label in ("POST /api/v1/secrets/{secret_id}/reveal", "POST /api/v1/secrets/{secret_id}/rotate",
                  "GET /api/v1/services/{name}/logs", "PUT /api/v1/answers/{input_id}"):
        assert any(code < 300 for (seen, code) in statuses if seen == label), (label, statuses)

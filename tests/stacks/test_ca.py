"""Publishing the internal ingress CA: its certificate, never its key.

So that browsers and pods can trust the CA, the stack publishes its certificate
three ways: a ConfigMap ``mora-ingress-ca`` (``ca.crt``) in the stack's
namespace, a ``ca.crt`` key in the ingress TLS Secret, and a non-secret stack
output ``ingress_ca_cert`` (what ``mora ca`` reads). None of them may carry the
CA's private key, and the ConfigMap and the output must not be Pulumi secrets
(a secret output is hidden from ``Workspace.outputs``).
"""

from __future__ import annotations

from typing import Any

import pytest
from stacks_helpers import ANSWERS, PARAMS, by_kind, media_server, minimal, validate

from stacks.config import StackConfig
from stacks.render import _SECRET_SIG, _SIG_KEY, render, run_mocked, run_program, safe_config

CA_PLACEHOLDER = "<generated:secret:mora-ingress-ca:cert_pem>"


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render(media_server(), StackConfig(params=PARAMS, answers=ANSWERS))


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(_SIG_KEY) == _SECRET_SIG


def test_config_map_holds_the_ca_certificate_only(objects):
    config_map = by_kind(objects, "ConfigMap")["mora-ingress-ca"]
    assert config_map["metadata"]["namespace"] == "media"
    assert config_map["data"] == {"ca.crt": CA_PLACEHOLDER}
    assert "private_key" not in str(config_map) and "PRIVATE KEY" not in str(config_map)
    validate(config_map)


def test_tls_secret_carries_the_ca_certificate(objects):
    tls = by_kind(objects, "Secret")["mora-ingress-tls"]
    assert tls["stringData"]["ca.crt"] == CA_PLACEHOLDER
    # The only private key in it is the server certificate's own, never the CA's.
    assert "mora-ingress-ca:private_key_pem" not in str(tls)


def test_config_map_in_a_stacks_own_namespace():
    config = StackConfig(params=PARAMS, answers=ANSWERS, namespace="media-server-friend")
    config_map = by_kind(render(media_server(), config), "ConfigMap")["mora-ingress-ca"]
    assert config_map["metadata"]["namespace"] == "media-server-friend"


def test_the_certificate_is_published_as_plain_data_not_a_secret():
    # With the real answers (run_program), as an update would run: the ConfigMap's
    # data must reach the cluster as plain data, not as a Pulumi secret.
    recording = run_program(media_server(), StackConfig(params=PARAMS, answers=ANSWERS))
    (config_map,) = [r for r in recording.resources
                     if r.type == "kubernetes:core/v1:ConfigMap" and r.name == "mora-ingress-ca"]
    assert not _is_secret(config_map.inputs["data"])
    assert not _is_secret(config_map.inputs["data"]["ca.crt"])


def test_stack_output_is_the_certificate_and_not_secret():
    manifest = minimal()
    config = StackConfig(params={"domain": "example.org"})
    from stacks.program import build

    def program() -> dict[str, Any]:
        import pulumi_kubernetes as k8s

        outputs = build(manifest, safe_config(manifest, config))
        # A probe object: the mocks record whether an input is a secret.
        k8s.core.v1.ConfigMap("probe", data={"cert": outputs["ingress_ca_cert"]})
        return outputs

    recording = run_mocked(manifest.project.name, program)
    probe = next(r for r in recording.resources if r.name == "probe")
    assert probe.inputs["data"]["cert"] == CA_PLACEHOLDER
    assert not _is_secret(probe.inputs["data"]["cert"])
    assert "ingress_ca_cert" in recording.outputs


def test_no_ca_with_a_cert_manager_issuer():
    config = StackConfig(params={"domain": "example.org"}, cert_manager_issuer="letsencrypt")
    recording = run_program(minimal(), config)
    assert "ingress_ca_cert" not in recording.outputs
    assert not [r for r in recording.resources if r.name.startswith("mora-ingress-ca")]

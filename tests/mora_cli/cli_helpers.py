"""Helpers for the CLI tests: a sample manifest, diagnostics, and the checker skip mark.

The command layer is tested against :func:`mora_dsl.api.compile_project`'s
contract (a :class:`CompileResult`), not against the checker's current wording,
so these tests pin the CLI's behaviour while the compiler evolves.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from mora_dsl import manifest as m
from mora_dsl.diagnostics import Diagnostic
from mora_dsl.syntax import Span

REPO = Path(__file__).resolve().parents[2]
HAS_CHECKER = importlib.util.find_spec("mora_dsl.checker") is not None
needs_checker = pytest.mark.skipif(
    not HAS_CHECKER, reason="mora_dsl.checker (the compiler's semantic pass) is not there yet"
)


def why_no_real_cluster(*, manager_image: bool = False) -> str | None:
    """Why a test against a real cluster cannot run here (``None``: it can).

    It needs the ``pulumi`` CLI and a kubeconfig; with ``manager_image``, also
    ``MORA_TEST_MANAGER_IMAGE``, a manager image the cluster can pull.
    """
    missing = []
    if shutil.which("pulumi") is None:
        missing.append("the pulumi CLI is not installed")
    if not (os.environ.get("KUBECONFIG") or (Path.home() / ".kube" / "config").exists()):
        missing.append("there is no kubeconfig (no cluster to deploy to)")
    if manager_image and not os.environ.get("MORA_TEST_MANAGER_IMAGE"):
        missing.append("MORA_TEST_MANAGER_IMAGE names no manager image the cluster can pull")
    return " and ".join(missing) or None


def _span(line: int = 1) -> m.Span:
    return m.Span(file="main.mora", line=line, column=1, end_line=line, end_column=5)


def _service(name: str, depends_on: list[str] | None = None, **kw: Any) -> m.Service:
    return m.Service(
        name=name, image=f"example/{name}:1", depends_on=depends_on or [], span=_span(), **kw
    )


def sample_manifest_model() -> m.Manifest:
    """Five services in three waves, one input another service waits for."""
    edges = [
        m.Edge(service="sonarr", on="qbittorrent", reason="depends_on", span=_span(3)),
        m.Edge(service="sonarr", on="prowlarr", reason="depends_on", span=_span(3)),
        m.Edge(service="janitorr", on="sonarr", reason="reference", span=_span(5)),
        m.Edge(service="janitorr", on="jellyfin", reason="reference", span=_span(5)),
    ]
    return m.Manifest(
        project=m.Project(name="demo", namespace="demo", span=_span()),
        services=[
            _service("qbittorrent"),
            _service("prowlarr"),
            _service("jellyfin", inputs=["jellyfin.api_key"]),
            _service("sonarr", depends_on=["qbittorrent", "prowlarr"]),
            _service("janitorr"),
        ],
        inputs=[
            m.Input(
                id="jellyfin.api_key",
                name="api_key",
                service="jellyfin",
                type=m.TypeSpec(name="secret"),
                title="Create a Jellyfin API key",
                when="after_start",
                when_inferred=True,
                used_by=["janitorr"],
                span=_span(4),
            )
        ],
        graph=m.Graph(
            edges=edges,
            waves=[["qbittorrent", "prowlarr", "jellyfin"], ["sonarr"], ["janitorr"]],
        ),
    )


SOURCE = "service web {\n  image = imag\n}\n"


def error_diagnostic(code: str = "E101", severity: str = "error") -> Diagnostic:
    return Diagnostic(
        code,
        "unknown name `imag`",
        Span("main.mora", 2, 11, 2, 15),
        help="did you mean `image`?",
        severity=severity,
    )

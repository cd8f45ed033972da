"""Every object rendered from the real example projects validates against Kubernetes 1.30."""

from __future__ import annotations

from pathlib import Path

import pytest
from stacks_helpers import NO_LEAK, by_kind, validate

from mora_dsl import compile_project
from stacks.config import StackConfig
from stacks.render import render, to_yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PARAMS = {"domain": "home.example.com", "media_path": "/srv/media"}


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()))
def test_example_renders_valid_objects(name: str) -> None:
    result = compile_project(EXAMPLES / name)
    assert result.ok, result.render_diagnostics()
    manifest = result.validated()
    params = {p.name: PARAMS[p.name] for p in manifest.params if p.name in PARAMS}
    answers = {i.id: NO_LEAK for i in manifest.inputs}
    objects = render(manifest, StackConfig(params=params, answers=answers))
    assert by_kind(objects, "Deployment")
    for obj in objects:
        validate(obj)
    assert NO_LEAK not in to_yaml(objects)

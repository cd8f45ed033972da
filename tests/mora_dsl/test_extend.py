"""`extend SERVICE { ... }`: adding to a service declared elsewhere, like a compose override."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mora_dsl import compile_project

MAIN = '''project "t" {}
param domain: domain
template arr(kind: string) {
  image = "x/${kind}"
  port http = 80
  environment = { A = "1", B = "2" }
}
service sonarr = arr(kind = "sonarr") { environment = { B = "3" } }
service qb {
  image = "qb"
  port http = 8080
}
'''

EXTRA = '''extend qb {
  micromanager = "qbittorrent"
  secret webui_password = password(length = 24)
}
extend sonarr {
  micromanager = "arr"
  image = "y/sonarr"
  environment = { QB = qb.webui_password, B = "4" }
}
'''


def _manifest(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "main.mora").write_text(MAIN)
    (tmp_path / "zz-extra.mora").write_text(EXTRA)
    result = compile_project(tmp_path)
    assert result.ok, result.render_diagnostics()
    assert result.manifest is not None
    return {s["name"]: s for s in result.manifest["services"]}


def test_extend_adds_attributes_and_secrets(tmp_path: Path) -> None:
    qb = _manifest(tmp_path)["qb"]
    assert qb["micromanager"] == "qbittorrent"
    assert qb["secrets"] == ["qb.webui_password"]


def test_extend_replaces_and_merges_over_template_and_instance(tmp_path: Path) -> None:
    sonarr = _manifest(tmp_path)["sonarr"]
    assert sonarr["image"] == "y/sonarr"
    assert sonarr["environment"] == {"A": "1", "B": "4", "QB": {"ref": "secret:qb.webui_password"}}


def test_a_reference_added_by_extend_is_a_dependency(tmp_path: Path) -> None:
    (tmp_path / "main.mora").write_text(MAIN)
    (tmp_path / "zz-extra.mora").write_text(EXTRA)
    graph = compile_project(tmp_path).manifest["graph"]  # type: ignore[index]
    assert graph["waves"] == [["qb"], ["sonarr"]]

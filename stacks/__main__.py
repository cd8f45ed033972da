"""Entry point for a plain `pulumi up` (see the root ``Pulumi.yaml``).

Reads the project folder from ``mora:project``, compiles it, and runs the same
program `mora up` runs inline. Compile errors stop the run with the compiler's
own diagnostics instead of a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pulumi

from mora_dsl import compile_project
from stacks.program import run


def main() -> None:
    project = pulumi.Config("mora").require("project")
    root = Path(pulumi.get_root_directory() or ".")
    path = Path(project) if Path(project).is_absolute() else root / project
    result = compile_project(path)
    if not result.ok or result.manifest is None:
        sys.stderr.write(result.render_diagnostics())
        raise SystemExit(f"mora: {project} has errors; fix them (`mora check {project}`)")
    run(result.validated())


main()

"""mora's own record of each stack: ``$MORA_HOME/stacks/<project>/<stack>.json``.

The record holds what ``mora init`` was told (params, backend, cluster settings)
so that commands which need no engine (``mora render``, ``mora stacks``) work
without Pulumi, and so that ``mora up`` can write the same values into the
Pulumi stack later. Wizard answers are *not* kept here: they live in Pulumi's
secret config (and the manager's store).

It also remembers how the stack was last deployed (``mode``): ``"manager"`` once
an in-cluster manager accepted its manifest, ``"local"`` after a successful
``mora up --local``. ``preview``, ``destroy``, ``ca`` and ``secrets show`` follow
it. ``manager`` keeps the ``mora up`` options about the manager that were given
(``url``, ``namespace``, ``image``), so a later ``mora up`` that redeploys the
manager uses them again.

Files are written atomically with mode 0600 in folders with mode 0700: params
are not secrets, but a homelab's domain and folders are nobody else's business.
Only the standard library is imported here (``mora stacks`` stays light), and
``tempfile`` only when a file is written.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RECORD_VERSION = 1
#: How a stack was last deployed: through the in-cluster manager, or from this machine.
MODES = ("manager", "local")
#: The remembered `mora up` options about the manager (``--manager-url`` → ``url``, …).
MANAGER_OPTIONS = ("url", "namespace", "image")
#: Settings a record may hold, as :class:`stacks.config.StackConfig` fields.
# The same names as stacks.config.FORWARDED_SETTINGS, written out because importing
# stacks would put pydantic on the start-up path of every command; a test keeps them equal.
SETTINGS = ("cert_manager_issuer", "storage_class", "cluster_domain", "ingress_class",
            "render_group", "namespace", "micromanager_image")
#: Pulumi's rule for stack names, which also keeps them safe as file names.
_STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class RecordError(Exception):
    """A record that cannot be read (damaged file); the message names the file."""


def valid_stack_name(name: str) -> bool:
    return bool(_STACK_NAME.match(name)) and ".." not in name


@dataclass
class StackRecord:
    project: str
    stack: str
    #: The project folder as given to ``mora init`` (absolute), for commands without PATH.
    path: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: Pulumi backend URL; ``None`` is mora's embedded local file backend, ``"cloud"`` a login.
    backend: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    #: The kubeconfig of this stack's cluster; ``None``: ``$KUBECONFIG`` or ``~/.kube/config``.
    kubeconfig: str | None = None
    #: The value of the project's domain param, for listings.
    domain: str | None = None
    #: How the last `mora up` deployed it (one of :data:`MODES`); ``None``: not yet known.
    mode: str | None = None
    #: The manager options `mora up` was given (keys of :data:`MANAGER_OPTIONS`).
    manager: dict[str, str] = field(default_factory=dict)
    created: str = ""
    updated: str = ""
    version: int = RECORD_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StackRecord:
        """Parse a record, refusing fields of the wrong type (``ValueError`` names the field).

        A hand-edited or damaged file is read long before its fields are used:
        without these checks a ``"params": "x"`` would surface later as an
        internal error deep inside ``render`` or ``up`` instead of one line
        naming the file.
        """
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        for name, kinds in _FIELD_TYPES.items():
            if name in values and not _is(values[name], kinds):
                raise ValueError(
                    f"`{name}` must be {_describe(kinds)}, not {_json_type(values[name])}"
                )
        for name, value in values.get("settings", {}).items():
            kinds = (int, type(None)) if name == "render_group" else (str, type(None))
            if name in SETTINGS and not _is(value, kinds):
                raise ValueError(
                    f"setting `{name}` must be {_describe(kinds)}, not {_json_type(value)}"
                )
        if values.get("mode") not in (None, *MODES):
            raise ValueError(f"`mode` must be one of {', '.join(MODES)}, not {values['mode']!r}")
        for name, value in values.get("manager", {}).items():
            if name in MANAGER_OPTIONS and not _is(value, (str,)):
                raise ValueError(f"manager option `{name}` must be a string, "
                                 f"not {_json_type(value)}")
        return cls(**values)


#: The JSON type each record field must have (``project`` and ``stack`` are required).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "project": (str,), "stack": (str,), "path": (str, type(None)), "params": (dict,),
    "backend": (str, type(None)), "settings": (dict,), "kubeconfig": (str, type(None)),
    "domain": (str, type(None)), "created": (str,), "updated": (str,), "version": (int,),
    "mode": (str, type(None)), "manager": (dict,),
}
_JSON_NAMES = {str: "a string", int: "a number", dict: "an object", type(None): "null",
               list: "a list", bool: "true/false", float: "a number"}


def _is(value: Any, kinds: tuple[type, ...]) -> bool:
    """``isinstance`` without JSON's ``true`` passing for a number."""
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


def _describe(kinds: tuple[type, ...]) -> str:
    return " or ".join(_JSON_NAMES[k] for k in kinds)


def _json_type(value: Any) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def stacks_root(home: Path) -> Path:
    return home / "stacks"


def record_path(home: Path, project: str, stack: str) -> Path:
    return stacks_root(home) / project / f"{stack}.json"


def _private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
        d.chmod(0o700)  # mkdir's mode is filtered by the umask
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically, mode 0600, its folder (and missing parents) 0700."""
    import tempfile  # not at the top: `mora --help` and `mora check` load this module

    _private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp: 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save(home: Path, record: StackRecord) -> Path:
    """Write ``record`` atomically (0600); sets ``created``/``updated``."""
    _private_dir(stacks_root(home))
    record.updated = now()
    record.created = record.created or record.updated
    return write_private(record_path(home, record.project, record.stack), record.to_json())


def load(home: Path, project: str, stack: str) -> StackRecord | None:
    path = record_path(home, project, stack)
    if not path.is_file():
        return None
    return _read(path)


def _read(path: Path) -> StackRecord:
    try:
        return StackRecord.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError) as err:
        raise RecordError(f"cannot read the stack record {path}: {err}") from None


def all_records(home: Path, project: str | None = None) -> list[tuple[StackRecord, Path]]:
    """Every readable record (of ``project``, if given), sorted by project then stack.

    Damaged files are skipped here; :func:`load` reports them when a command needs one.
    """
    root = stacks_root(home)
    folders = [root / project] if project else sorted(p for p in root.glob("*") if p.is_dir())
    found = []
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            try:
                found.append((_read(path), path))
            except RecordError:
                continue
    return sorted(found, key=lambda rp: (rp[0].project, rp[0].stack))


def find_by_stack(home: Path, stack: str) -> list[StackRecord]:
    """The records named ``stack`` across projects (``mora secrets show`` without PATH)."""
    return [r for r, _ in all_records(home) if r.stack == stack]

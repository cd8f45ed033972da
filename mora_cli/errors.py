"""Exit codes and the one exception a command raises for misuse.

The codes are part of mora's interface (scripts and CI branch on them), so they
live in one place: 0 success, 1 the program (or the check) failed, 2 the
command was misused, 3 a tool mora needs (the Pulumi CLI, a cluster) is missing
or unreachable, 70 a bug in mora (``EX_SOFTWARE``), 130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TOOL_MISSING = 3
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """The command was called wrongly (a missing path, an unknown code...).

    ``main`` prints it as ``mora: error: MESSAGE`` and exits with
    :data:`EXIT_USAGE`; commands raise it instead of printing so every misuse
    looks the same.
    """

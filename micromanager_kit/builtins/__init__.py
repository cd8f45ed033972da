"""The built-in micromanagers, by the name a service's ``micromanager = "..."`` uses.

Each entry is ``"module:attribute"`` of a :class:`~micromanager_kit.Micromanager`,
imported only when ``mora micromanager run NAME`` asks for it (each built-in
pulls its own client library: ldap3, httpx…).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..micromanager import Micromanager

BUILTINS: dict[str, str] = {
    "ldap": "micromanager_kit.builtins.ldap:mm",
    "qbittorrent": "micromanager_kit.builtins.qbittorrent:mm",
    "jellyfin": "micromanager_kit.builtins.jellyfin:mm",
    "arr": "micromanager_kit.builtins.arr:mm",
    "jellyseerr": "micromanager_kit.builtins.jellyseerr:mm",
}


def load(name: str) -> Micromanager:
    """The built-in micromanager ``name``; ``KeyError`` when there is none by that name."""
    module_name, _, attribute = BUILTINS[name].partition(":")
    mm: Micromanager = getattr(importlib.import_module(module_name), attribute)
    return mm

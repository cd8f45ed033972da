"""The wizard: server-rendered pages for the admin, on top of :class:`manager_app.core.Manager`.

:func:`manager_app.app.create_app` includes :data:`router` when this package
is installed. Pages: ``/login``, ``/`` (overview), ``/wizard``, ``/services``
(and ``/services/NAME``); fragments for the refresh script:
``/wizard/status`` and ``/overview/live``. See :mod:`.routes` for the
security rules every route keeps and :mod:`.views` for what the pages show.
"""

from __future__ import annotations

from .routes import hot, router

__all__ = ["hot", "router"]

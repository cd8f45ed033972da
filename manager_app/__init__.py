"""The mora manager: receives manifests, plans waves, asks the wizard's questions, runs updates.

The public surface:

* :func:`manager_app.app.create_app` – the FastAPI app for a :class:`Settings`;
* :class:`manager_app.core.Manager` (``app.state.manager``) – the operations the API and
  the wizard pages share: ``plan()``, ``submit_answer()``, ``receive_manifest()``,
  ``trigger_update()``, ``updates()``;
* :mod:`manager_app.planner` – pure planning (states, waves, inputs in order, change detection);
* :mod:`manager_app.auth` – sessions, bearer token, ``csrf_token``/``verify_csrf`` for forms.

Importing this package is cheap: FastAPI, the store and Pulumi load with the submodules.
"""

from __future__ import annotations

from .settings import Settings

__all__ = ["Settings"]

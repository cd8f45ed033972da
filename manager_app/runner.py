"""The update runner: one stack update at a time, triggers coalesced, crashes resumed.

Every trigger (an answer, a manifest, a confirmed removal, a retry) goes into
the ``updates`` table first; the store folds a trigger into the update already
queued, so triggers arriving while an update runs make exactly one next update.
The runner also waits for a short quiet period before it starts (``debounce``),
so a burst of answers becomes one update. An update reads the answers and the
plan when it *starts*, so it applies every value stored before that moment.

Because the queue, the answers and each service's state are in the store before
anything is deployed, a manager killed mid-update finds the update ``running``
on restart: it marks it ``interrupted`` and queues a resume, which refreshes
the stack (re-reads what really exists) and then runs the update again.

After a successful update the plan is recomputed: if more services became
ready (the next wave) or a held service can now take its new definition, a
follow-up update is queued, so a whole project deploys wave after wave.

Previews and destroys (the API's stack routes) take the same lock as updates
(:attr:`Runner.lock`), so none of them ever runs beside an update of the stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from mora_dsl.manifest import Manifest

from . import planner
from .core import (
    Applied,
    InvalidManifest,
    Manager,
    NoManifest,
    NotSupported,
    manifest_problems,
    stack_settings,
)
from .deployers import (
    Deployer,
    DeployError,
    PreviewOutcome,
    StackOperations,
    TransientDeployError,
)
from .store import UpdateRecord

if TYPE_CHECKING:
    from stacks.config import StackConfig

log = logging.getLogger("mora.manager.runner")


class Runner:
    """Runs queued updates one at a time, in the app's event loop; see the module docstring."""

    def __init__(self, manager: Manager, deployer: Deployer) -> None:
        self.manager = manager
        self.store = manager.store
        self.settings = manager.settings
        self.deployer = deployer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._idle: asyncio.Event | None = None
        #: Held by every update, preview and destroy: one at a time per stack.
        self.lock = asyncio.Lock()
        manager.on_trigger = self.wake

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Resume interrupted updates, then start working through the queue."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        for interrupted in self.store.interrupted_updates():
            log.warning("update %s was interrupted; resuming it", interrupted.id)
            update_id = self.store.enqueue_update(
                "resume after the manager restarted", interrupted.changes
            )
            self.store.mark_resume(update_id)
        released = self.store.released()
        if released:  # stopped between a removal's two updates: the second is still due
            names = ", ".join(released)
            self.store.enqueue_update(f"removal of {names}: second step",
                                      [f"drop {names} from the stack (volumes stay in the cluster)"])
        self._task = asyncio.create_task(self._work(), name="mora-update-runner")
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Called from any thread after a trigger was stored."""
        loop, event = self._loop, self._wake
        if loop is None or event is None or loop.is_closed():
            return  # not started (e.g. an in-process test without lifespan): stays queued
        loop.call_soon_threadsafe(event.set)

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until nothing is queued or running (for tests and the CLI's progress)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._idle is not None and self._idle.is_set() and self.store.next_queued() is None:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("updates still running")

    # ------------------------------------------------------------------ the loop

    async def _work(self) -> None:
        assert self._wake is not None and self._idle is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.store.next_queued() is not None:
                self._idle.clear()
                await self._debounce()
                async with self.lock:
                    # Read again under the lock: a destroy may have cancelled it meanwhile.
                    if (current := self.store.next_queued()) is None:
                        break
                    try:
                        await self._run(current)
                    except asyncio.CancelledError:
                        raise
                    except Exception as err:  # a bug must not stop the runner
                        log.exception("update %s crashed", current.id)
                        self.store.finish_update(
                            current.id, "failed", f"internal error: {type(err).__name__}")
            self._idle.set()

    async def _debounce(self) -> None:
        """Wait for a quiet period (or the maximum delay) so a burst becomes one update."""
        assert self._wake is not None
        quiet, limit = self.settings.debounce_seconds, self.settings.max_debounce_seconds
        if quiet <= 0:
            return
        started = time.monotonic()
        while time.monotonic() - started < limit:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=quiet)
            except TimeoutError:
                return

    async def _run(self, update: UpdateRecord) -> None:
        manager, store = self.manager, self.store
        try:
            record = manager.manifest_record()
        except NoManifest:
            self._refuse(update, str(NoManifest()))
            return
        # A manifest stored before the manager checked manifests on arrival may name
        # things it does not define; the planner and the stack would fail deep inside.
        problems = manifest_problems(record.manifest)
        if problems:
            self._refuse(update, f"{InvalidManifest(problems)}; send a corrected manifest")
            return
        try:
            prepared = self._prepare(record.manifest)
        except (KeyError, ValueError, StopIteration) as err:
            log.warning("update %s: cannot be prepared (%s)", update.id, type(err).__name__)
            self._refuse(update, "the update cannot be prepared from the stored manifests "
                         f"({type(err).__name__}: {err}); send a corrected manifest")
            return
        plan, previous, effective, config, snapshot, releasing, confirmed = prepared
        deploy = set(config.deploy or ())
        states = store.states()
        starting = {n: "deploying" for n in deploy if states.get(n) != "running"}

        store.start_update(update.id, sorted(deploy))
        store.set_states(starting, update_id=update.id)
        log.info("update %s: deploying %s%s", update.id, ", ".join(sorted(deploy)) or "nothing",
                 f"; releasing {', '.join(sorted(releasing))}" if releasing else "")

        try:
            error = await self._attempts(update, effective, config)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a deployer bug: the services must not stay "deploying"
            log.exception("update %s crashed in the deployer", update.id)
            error = f"internal error: {type(err).__name__}"
        if error is not None:
            store.set_states(
                {n: "failed" for n in starting}, update_id=update.id, error=error
            )
            store.finish_update(update.id, "failed", error)
            log.warning("update %s failed", update.id)
            return

        store.set_states({n: "running" for n in deploy}, update_id=update.id)
        # A confirmed removal takes two updates (see StackConfig.released): the first
        # releases the service's claims, the next drops them from the stack.
        for name in sorted(releasing):
            store.mark_released(name)
        for name in sorted(confirmed - releasing):
            store.finish_removal(name)
        store.set_effective(record.id, effective)
        applied = applied_changes(store.applied(), snapshot, previous, effective)
        store.set_applied(update.id, snapshot)
        store.finish_update(update.id, "succeeded")
        log.info("update %s succeeded", update.id)
        # Schedules micromanager hooks (after-start, inputs-answered, reconfigure); returns at once.
        manager.listener.started(sorted(starting), applied)
        if releasing:
            names = ", ".join(sorted(releasing))
            manager.trigger_update(f"removal of {names}: second step",
                                   [f"drop {names} from the stack (volumes stay in the cluster)"])
        self._follow_up(plan)

    # ------------------------------------------------------------------ whole-stack operations

    def _operations(self) -> StackOperations:
        if not isinstance(self.deployer, StackOperations):
            raise NotSupported(f"the deployer {type(self.deployer).__name__} cannot do this")
        return self.deployer

    async def preview(self) -> tuple[PreviewOutcome, list[str]]:
        """What the next update would change (and the services it would deploy).

        Raises :class:`~.core.NoManifest`, :class:`~.deployers.DeployError` or
        :class:`~.core.NotSupported`.
        """
        operations = self._operations()
        record = self.manager.manifest_record()
        async with self.lock:
            try:
                _, _, effective, config, *_ = self._prepare(record.manifest)
            except (KeyError, ValueError, StopIteration) as err:
                raise DeployError("the next update cannot be prepared from the stored "
                                  f"manifests ({type(err).__name__}); send a corrected one") from None
            outcome = await asyncio.to_thread(operations.preview, effective, config)
        return outcome, sorted(config.deploy or ())

    async def destroy(self, delete_volumes: bool) -> tuple[dict[str, int], list[int]]:
        """Destroy the services' stack after the running update; cancels the queued ones.

        Returns the change counts and the ids of the cancelled updates.
        """
        operations = self._operations()
        record = self.manager.manifest_record()
        async with self.lock:
            manifest = self.store.last_effective() or record.manifest
            changes = await asyncio.to_thread(
                functools.partial(operations.destroy, manifest, delete_volumes=delete_volumes))
            cancelled = self.manager.stack_destroyed(delete_volumes)
        return changes, cancelled

    async def outputs(self) -> dict[str, Any]:
        """The stack's non-secret outputs (no lock: reading the state changes nothing)."""
        operations = self._operations()
        manifest = self.manager.manifest_record().manifest
        return await asyncio.to_thread(operations.outputs, manifest)

    def _prepare(self, manifest: Manifest) -> tuple[
        planner.Plan, Manifest | None, Manifest, StackConfig, dict[str, Any], set[str], set[str]
    ]:
        """The plan, the manifests (last deployed, to deploy), the config and what it applies."""
        from stacks.config import StackConfig

        manager, store = self.manager, self.store
        plan = manager.plan()
        previous = store.last_effective()
        confirmed = set(store.removals(confirmed=True))
        releasing = confirmed - set(store.released())
        keep = plan.held() | set(plan.pending_removals) | releasing
        effective = planner.effective_manifest(manifest, previous, keep)
        effective_names = {s.name for s in effective.services}
        releasing &= effective_names  # one that was never deployed has nothing to release
        deploy = ((plan.deploy_set() | set(plan.pending_removals)) & effective_names) - releasing
        input_ids = {i.id for i in effective.inputs}
        stamps = store.answered()  # read before the values: a newer value only re-notifies
        answers = {k: v for k, v in store.answers().items() if k in input_ids}
        params = manager.params()
        rotate = store.rotations()
        config = StackConfig.model_validate({
            **stack_settings(self.settings),
            "params": params,
            "answers": {k: SecretStr(v) for k, v in answers.items()},
            "deploy": frozenset(deploy),
            "rotate": rotate,
            "released": frozenset(releasing),
        })
        snapshot = {
            "answers": {k: stamps[k] for k in answers if k in stamps},
            "params": params,
            "rotate": rotate,
        }
        return plan, previous, effective, config, snapshot, releasing, confirmed

    def _refuse(self, update: UpdateRecord, error: str) -> None:
        """Record an update that cannot run, with why (shown in the update history)."""
        self.store.start_update(update.id, [])
        self.store.finish_update(update.id, "failed", error)
        log.warning("update %s refused: %s", update.id, error)

    async def _attempts(
        self, update: UpdateRecord, manifest: Manifest, config: StackConfig
    ) -> str | None:
        """Run the deployer (refresh first when resuming); retry transient failures."""
        attempts = max(1, self.settings.transient_attempts)
        for attempt in range(1, attempts + 1):
            try:
                if update.resume:
                    await asyncio.to_thread(self.deployer.refresh, manifest, config)
                await asyncio.to_thread(self.deployer.up, manifest, config)
                return None
            except TransientDeployError as err:
                if attempt == attempts:
                    return str(err)
                delay = self.settings.retry_backoff_seconds * 2 ** (attempt - 1)
                log.info("update %s: transient failure, retrying in %.1f s", update.id, delay)
                self.store.count_attempt(update.id)
                await asyncio.sleep(delay)
            except DeployError as err:
                return str(err)
        return "the update did not run"  # pragma: no cover - the loop always returns

    def _follow_up(self, before: planner.Plan) -> None:
        """Queue the next wave when this update made more services deployable."""
        after = self.manager.plan()
        if after.deploy_set() != before.deploy_set() or after.held() != before.held():
            newly = sorted(s.name for s in after.services if s.state == "ready")
            released = sorted(before.held() - after.held())
            lines = []
            if newly:
                lines.append(f"ready: {', '.join(newly)}")
            if released:
                lines.append(f"new definition applies: {', '.join(released)}")
            if lines:
                self.manager.trigger_update("next wave", lines)


def applied_changes(
    before: dict[str, Any] | None,
    after: dict[str, Any],
    previous: Manifest | None,
    effective: Manifest,
) -> Applied:
    """What an update applied, from the snapshots of the last good update and this one.

    Answers are compared by when they were given (their values are never kept
    outside the encrypted table); params and rotation stamps by value. Without
    an earlier snapshot (the first update) nothing counts as changed: every
    service deployed is starting anyway.
    """
    changed_services = tuple(planner.diff(previous, effective).changed_services) if previous else ()
    if before is None:
        return Applied(changed_services=changed_services)
    old_answers: dict[str, str] = before.get("answers", {})
    answered = tuple(sorted(
        i for i, stamp in after["answers"].items() if old_answers.get(i) != stamp
    ))
    old_params: dict[str, Any] = before.get("params", {})
    new_params: dict[str, Any] = after["params"]
    changed = [f"param:{p}" for p in sorted(set(old_params) | set(new_params))
               if old_params.get(p) != new_params.get(p)]
    old_rotate: dict[str, str] = before.get("rotate", {})
    changed += [f"secret:{s}" for s, stamp in sorted(after["rotate"].items())
                if old_rotate.get(s) != stamp]
    return Applied(answered=answered, changed=tuple(changed), changed_services=changed_services)

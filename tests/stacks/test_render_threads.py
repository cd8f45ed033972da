"""The offline renderer from any thread: the manager renders in worker threads.

Pulumi's runtime and mocks call ``asyncio.get_event_loop()``, which only makes a
loop by itself in the main thread; ``run_program`` must bring its own elsewhere.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from stacks_helpers import by_kind, minimal, validate

from stacks.config import StackConfig
from stacks.render import render

CONFIG = StackConfig(params={"domain": "example.org"})


def _in_thread(fn: Any) -> Any:
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as err:  # re-raised in the test's thread
            out["error"] = err

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_render_from_a_plain_thread():
    objects = _in_thread(lambda: render(minimal(), CONFIG))
    assert by_kind(objects, "Deployment")["whoami"]
    for obj in objects:
        validate(obj)


def test_render_twice_from_the_same_thread_and_leave_no_loop_behind():
    def twice() -> tuple[Any, Any, bool]:
        first, second = render(minimal(), CONFIG), render(minimal(), CONFIG)
        try:
            asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            left = False
        else:
            left = True
        return first, second, left

    first, second, loop_left = _in_thread(twice)
    assert first == second
    assert not loop_left


def test_render_from_asyncio_to_thread():
    async def main() -> list[dict[str, Any]]:
        return await asyncio.to_thread(render, minimal(), CONFIG)

    assert by_kind(asyncio.run(main()), "Deployment")["whoami"]


def test_render_from_several_threads_at_once():
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(render(minimal(), CONFIG)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 3 and all(r == results[0] for r in results)
